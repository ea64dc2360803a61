"""Services scale by replicas in a consumer group: two routers split the partitions; when one stops
the other takes them over; no case is lost or handled twice."""

from __future__ import annotations

import re
import threading
import time

import pytest

from shared import devstack, topics
from tests.conftest import unique
from tests.e2e.conftest import eventually
from tests.e2e.test_crash_recovery import TEXTS, _assert_exactly_once

pytestmark = pytest.mark.e2e
ROUTER_PARTITIONS = {f"{t}:{p}" for t in [topics.CASES_RECEIVED, *topics.FEEDBACK_TOPICS] for p in range(3)}


def _last_assignment(log: str) -> set[str]:
    lines = [line for line in log.splitlines() if "assigned to partitions" in line]
    if not lines:
        return set()
    return {f"{t}:{p}" for t, p in re.findall(r"topic='([\w.]+)', partition=(\d+)", lines[-1])}




def test_two_routers_split_partitions_and_one_takes_over_when_the_other_stops(stack):
    first_log = stack.log_dir / "router.log"
    second_log = stack.log_dir / "router-2.log"
    port = devstack.free_port()
    second = devstack.ServiceProcess("router-2", ["run", "router", "--port", str(port)], stack.env, port,
                                     second_log).start()
    try:
        second.wait_ready(60)
        eventually(lambda: second_log.exists() and _last_assignment(second_log.read_text()), timeout=60)

        def split() -> bool:
            a, b = _last_assignment(first_log.read_text()), _last_assignment(second_log.read_text())
            return bool(a) and bool(b) and not (a & b) and (a | b) == ROUTER_PARTITIONS

        eventually(split, timeout=60)

        case_ids: list[str] = []

        def feed() -> None:
            for i in range(40):
                text, division = TEXTS[i % len(TEXTS)]
                r = stack.submit({"channel": "hotline", "description": unique(text),
                                  "location": {"division_code": division}})
                case_ids.append(r.json()["case_id"])
                time.sleep(0.03)

        feeder = threading.Thread(target=feed)
        feeder.start()
        time.sleep(0.6)
        # graceful: finishes its batch, commits, leaves the group (uvicorn re-raises SIGTERM when done)
        assert second.stop() in (0, -15)
        assert '"service stopped"' in second_log.read_text()
        eventually(lambda: _last_assignment(first_log.read_text()) == ROUTER_PARTITIONS, timeout=60)
        feeder.join()
        _assert_exactly_once(stack, case_ids)
    finally:
        second.stop()
