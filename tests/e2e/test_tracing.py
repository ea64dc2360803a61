"""Sampled traces stay whole: with parent-based ratio sampling (the standard OTEL_ variables), a case
whose first span is sampled has one connected trace across intake, router and audit, and a case
whose first span is not sampled costs no span anywhere. The spans are read from an in-memory OTLP
receiver that the four service processes export to."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.drill.stack import DrillStack, submission
from tests.e2e.conftest import eventually

pytestmark = pytest.mark.e2e

CASES = 40


class SpanSink:
    """An OTLP/HTTP trace receiver that keeps every span it is sent, in memory."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []  # (service.name, span)
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with sink._lock:
                    for rs in request.resource_spans:
                        service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
                        for ss in rs.scope_spans:
                            sink.spans.extend((service, span) for span in ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def by_trace(self) -> dict[str, list[tuple[str, object]]]:
        with self._lock:
            out: dict[str, list] = defaultdict(list)
            for service, span in self.spans:
                out[span.trace_id.hex()].append((service, span))
            return out


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory):
    sink = SpanSink()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
           "OTEL_TRACES_SAMPLER_ARG": "0.5", "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        stack = DrillStack(simulator=False).start()
    try:
        yield stack, sink
    finally:
        stack.stop()
        sink.server.shutdown()


def test_a_sampled_case_is_one_whole_trace_and_an_unsampled_one_costs_no_span(traced_stack):
    stack, sink = traced_stack
    run = uuid.uuid4().hex[:6]
    case_ids = []
    with httpx.Client(base_url=stack.url("intake"), headers={"Authorization": f"Bearer {stack.clerk}"}) as client:
        for i in range(CASES):
            r = client.post("/v1/cases", json=submission(i, run))
            assert r.status_code == 202, r.text
            case_ids.append(r.json()["case_id"])

    decided = ("org.onewindow.case.dispatched.v1", "org.onewindow.case.manual_triage_required.v1")

    def traces_in_audit():
        rows = stack.sql("SELECT case_id, type, trace_id FROM audit.events WHERE case_id = ANY($1::text[])", case_ids)
        done = {r["case_id"] for r in rows if r["type"] in decided}
        return rows if done == set(case_ids) else None

    rows = eventually(traces_in_audit, 90, "every case decided and in audit")
    trace_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        trace_of[r["case_id"]].add(r["trace_id"])
    assert all(len(t) == 1 and None not in t for t in trace_of.values()), "every event of a case in one trace"
    case_traces = {next(iter(t)) for t in trace_of.values()}
    assert len(case_traces) == CASES, "one trace per case"

    def whole_traces():
        spans = sink.by_trace()
        sampled = {t: spans[t] for t in case_traces if t in spans}
        # a sampled case's trace reaches the router and audit (spans are exported in batches)
        if sampled and all({"onewindow-router", "onewindow-audit"} <= {s for s, _ in v} for v in sampled.values()):
            return sampled
        return None

    sampled = eventually(whole_traces, 30, "the sampled cases' spans from every service")
    # ratio 0.5 over 40 cases: some sampled, some not (outside 4..36 has odds below 1e-7)
    assert 4 <= len(sampled) <= CASES - 4, len(sampled)
    for trace_id, spans in sampled.items():
        ids = {span.span_id for _, span in spans}
        roots = [(svc, span) for svc, span in spans if not span.parent_span_id]
        assert [svc for svc, _ in roots] == ["onewindow-intake"], f"{trace_id}: one root, intake's request"
        orphans = [(svc, span.name) for svc, span in spans if span.parent_span_id and span.parent_span_id not in ids]
        assert not orphans, f"{trace_id}: spans whose parent is missing: {orphans}"
        assert {"onewindow-intake", "onewindow-router", "onewindow-audit"} <= {svc for svc, _ in spans}
    # an unsampled case: not one span, in any service, under its trace id
    spans = sink.by_trace()
    assert not [t for t in case_traces - set(sampled) if t in spans]
    # the batches are spanned on their own and link to the sampled events they carried
    batches = [span for _, span in sink.spans if span.name.startswith("process batch ")]
    linked = {link.trace_id.hex() for span in batches for link in span.links}
    assert batches and linked & set(sampled) and not linked & (case_traces - set(sampled))
