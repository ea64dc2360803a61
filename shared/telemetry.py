"""OpenTelemetry set-up shared by every service, and W3C trace-context helpers.

One trace per case: intake's HTTP span starts it; every event carries `traceparent`; every
consumer continues the trace of the event it processes.

Sampling is the SDK's, configured by the standard variables (OTEL_TRACES_SAMPLER, default
`parentbased_always_on`; deployments set `parentbased_traceidratio` with OTEL_TRACES_SAMPLER_ARG).
The decision is taken once, at the case's first span, and travels in the traceparent's flags: every
later hop records spans only for a sampled case (`is_sampled`) and otherwise passes the traceparent
on untouched, so an unsampled case costs no spans while a sampled one stays whole across services.
"""

from __future__ import annotations

import os
import re
from functools import cache

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$")
_configured = False


def setup_telemetry(service_name: str, *, trace_sql: bool = False) -> None:
    """Install the tracer provider once: the sampler from OTEL_TRACES_SAMPLER(_ARG), OTLP export when
    OTEL_EXPORTER_OTLP_ENDPOINT is set; with `trace_sql`, a span per SQL statement as well (a cost per
    statement that a sampled case's batch span does not need)."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"onewindow-{service_name}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if trace_sql:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().instrument()
    _configured = True


@cache
def tracer() -> trace.Tracer:
    """OneWindow's tracer (one object: `get_tracer` builds a new one on every call)."""
    return trace.get_tracer("onewindow")


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, if any."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is the given traceparent (empty context when absent or invalid)."""
    if not traceparent:
        return otel_context.Context()
    return _propagator.extract({"traceparent": traceparent})


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id inside a traceparent, or None."""
    m = _TRACEPARENT.match(traceparent or "")
    return m.group(1) if m else None


def is_sampled(traceparent: str | None) -> bool:
    """Whether spans are recorded for this trace: no (valid) traceparent means a new root, which the
    sampler decides; a valid one carries the decision in its flags (bit 0)."""
    if not traceparent:
        return True
    m = _TRACEPARENT.match(traceparent)
    return m is None or bool(int(m.group(2), 16) & 1)
