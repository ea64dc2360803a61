"""Kill -9 a service while cases flow: after restart nothing is lost and nothing is duplicated."""

from __future__ import annotations

import random
import threading
import time

import pytest

from tests.conftest import unique
from tests.e2e.test_case_loop import EXTERNAL_LOOP

pytestmark = pytest.mark.e2e

TEXTS = [
    ("有人在小区门口打架斗殴", "339901001001"),
    ("对方拒不履行判决，申请强制执行", "339902001001"),
    ("反映征地补偿问题，要求信访答复", "339901002001"),
]


def _flow_while_killing(stack, victim: str, n_cases: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    case_ids: list[str] = []
    errors: list[str] = []

    def submit_all() -> None:
        for i in range(n_cases):
            text, division = TEXTS[i % len(TEXTS)]
            r = stack.submit({"channel": "hotline", "description": unique(text),
                              "location": {"division_code": division}})
            if r.status_code != 202:
                errors.append(r.text)
            else:
                case_ids.append(r.json()["case_id"])
            time.sleep(0.03)

    proc = stack.procs[victim]
    feeder = threading.Thread(target=submit_all)
    feeder.start()
    for _ in range(2):  # two kills at random moments while cases keep coming
        time.sleep(rng.uniform(0.3, 1.2))
        proc.kill()
        time.sleep(rng.uniform(0.1, 0.8))
        proc.start()
        proc.wait_ready(60)
    feeder.join()
    assert not errors
    assert len(case_ids) == n_cases
    return case_ids


def _assert_exactly_once(stack, case_ids: list[str]) -> None:
    for case_id in case_ids:
        events = stack.close_case(case_id, timeout=60)
        assert [e["type"] for e in events] == EXTERNAL_LOOP, f"case {case_id}"
    rows = stack.sql(
        "SELECT case_id, count(*) AS n, count(DISTINCT type) AS types FROM audit.events"
        " WHERE case_id = ANY($1::text[]) GROUP BY case_id",
        case_ids,
    )
    assert len(rows) == len(case_ids), "every case reached audit"
    assert all(r["n"] == 7 and r["types"] == 7 for r in rows), "no audit record lost or duplicated"
    states = stack.sql("SELECT status, count(*) AS n FROM router.cases WHERE case_id = ANY($1::uuid[]) GROUP BY status",
                       case_ids)
    assert [(r["status"], r["n"]) for r in states] == [("closed", len(case_ids))]


def test_router_killed_while_cases_flow_loses_and_duplicates_nothing(stack):
    _assert_exactly_once(stack, _flow_while_killing(stack, "router", 60, seed=7))


def test_audit_killed_while_cases_flow_records_each_event_once(stack):
    _assert_exactly_once(stack, _flow_while_killing(stack, "audit", 45, seed=11))
