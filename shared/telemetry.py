"""OpenTelemetry set-up shared by every service, and W3C trace-context helpers.

One trace per case: intake's HTTP span starts it; every event carries `traceparent`; every
consumer continues the trace of the event it processes.
"""

from __future__ import annotations

import os
import re

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_configured = False


def setup_telemetry(service_name: str) -> None:
    """Install the tracer provider (OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set) once."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"onewindow-{service_name}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument()
    _configured = True


def tracer() -> trace.Tracer:
    """OneWindow's tracer."""
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
