"""Trust boundaries without a database or broker: a dead letter of a submission keeps no personal
data (only its envelope, its error and a sha256 of the value); a service's login is derived from the
owner's URL; intake's write queue is bounded and refuses at once when full (Overloaded)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from types import SimpleNamespace

import pytest

from services.intake import domain
from services.intake.handlers import GroupWriter
from shared import topics
from shared.db import PoolTimeout, login_url, service_role
from shared.messaging.consumer import dead_letter_record
from shared.refusals import Overloaded

NAME, PHONE, ADDRESS = "张三丰", "13812345678", "柳岸小区7栋302室"
SUBMISSION = json.dumps({"channel": "hotline", "description": f"我叫{NAME}，电话{PHONE}，住{ADDRESS}，楼上漏水",
                         "reporter": {"name": NAME, "phone": PHONE},
                         "location": {"division_code": "999999", "address": ADDRESS}}, ensure_ascii=False).encode()
HEADERS = [("ce_specversion", b"1.0"), ("ce_id", b"evt-1"), ("ce_source", b"/departments/police/110"),
           ("ce_type", b"org.onewindow.case.submission.v1"), ("ce_subject", f"ref-{PHONE}".encode()),
           ("content-type", b"application/json"), ("x-reporter", NAME.encode())]


def _record(topic: str, key: bytes = b"ref-1") -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=1, offset=42, key=key, value=SUBMISSION, headers=HEADERS)


def _bytes_of(record) -> bytes:
    return record.key + record.value + b"".join(k.encode() + v for k, v in record.headers)


def test_a_dead_letter_of_a_submission_keeps_the_error_and_a_hash_not_the_person():
    error = f"invalid submission: [{{'field': 'location.division_code', 'detail': 'unknown'}}] 回电{PHONE}"
    dead = dead_letter_record(_record(topics.SUBMISSIONS, key=f"ref-{PHONE}".encode()), error, "intake")
    everything = _bytes_of(dead)
    for personal in (NAME, PHONE, ADDRESS, "漏水"):
        assert personal.encode() not in everything, personal
    digest = hashlib.sha256(SUBMISSION).hexdigest()
    headers = dict(dead.headers)
    assert json.loads(dead.value) == {"redacted": "personal data: the value is not kept", "sha256": digest,
                                      "bytes": len(SUBMISSION)}
    assert headers["dlq_value_sha256"] == digest.encode()
    assert headers["dlq_error"].startswith(b"invalid submission") and b"138****5678" in headers["dlq_error"]
    # the envelope stays (who sent what, when, to match it up); headers outside it do not
    assert {k: headers[k] for k in ("ce_id", "ce_source", "ce_type", "dlq_consumer", "dlq_topic")} == {
        "ce_id": b"evt-1", "ce_source": b"/departments/police/110", "ce_type": b"org.onewindow.case.submission.v1",
        "dlq_consumer": b"intake", "dlq_topic": b"intake.submissions"}
    assert "x-reporter" not in headers and headers["ce_subject"] == b"ref-138****5678"
    assert dead.key == b"ref-138****5678" and dead.topic == topics.DEAD_LETTER


def test_a_dead_letter_from_a_topic_without_personal_data_keeps_the_record_as_it_came():
    dead = dead_letter_record(_record(topics.ROUTER_DECISIONS), "rejected: no such dispatch", "router")
    assert dead.value == SUBMISSION and dead.key == b"ref-1"
    assert dead.headers[:len(HEADERS)] == HEADERS and "dlq_value_sha256" not in dict(dead.headers)


def test_a_service_logs_in_as_its_own_role_at_the_owners_server():
    assert service_role("audit") == "onewindow_audit"
    assert login_url("postgresql://postgres:secret@db:5432/onewindow?sslmode=require", "onewindow_intake") == \
        "postgresql://onewindow_intake@db:5432/onewindow?sslmode=require"
    # the embedded server's URL (Unix socket in the query); no password survives
    assert login_url("postgresql://postgres:@/postgres?host=/tmp/pg&password=x", "onewindow_router") == \
        "postgresql://onewindow_router@/postgres?host=%2Ftmp%2Fpg"


def test_a_pool_timeout_is_an_outage_for_consumers_and_busy_for_http():
    exc = PoolTimeout("no database connection within 5 s")
    assert isinstance(exc, TimeoutError) and isinstance(exc, asyncio.TimeoutError) and isinstance(exc, Overloaded)
    assert exc.retry_after >= 1 and exc.detail == "no database connection within 5 s"


class _StuckPool:
    """A pool whose connections never come: the writer stays busy with its first group."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    def acquire(self):
        pool = self

        class _Ctx:
            async def __aenter__(self):
                pool.asked.set()
                await asyncio.Event().wait()  # never

            async def __aexit__(self, *exc):
                return False

            def __await__(self):  # `await pool.acquire()`, as asyncpg's context allows
                return self.__aenter__().__await__()

        return _Ctx()


async def test_the_write_queue_is_bounded_and_refuses_at_once_when_full():
    pool = _StuckPool()
    writer = GroupWriter(pool, domain.DuplicatePolicy(), on_commit=lambda: None, max_queue=2)
    writer.start()
    pending = SimpleNamespace()  # the writer never gets as far as reading it
    try:
        first = asyncio.create_task(writer.submit(pending))
        await asyncio.wait_for(pool.asked.wait(), 5)  # taken by the writer, which now waits for the database
        waiting = [asyncio.create_task(writer.submit(pending)) for _ in range(2)]  # the queue's two places
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="queue is full"):
            await asyncio.wait_for(writer.submit(pending), 1)  # at once, not after the writer
        assert not first.done() and not any(t.done() for t in waiting)
    finally:
        writer._task.cancel()
        for t in [first, *waiting]:
            t.cancel()
