"""`onewindow replay` on the live stack's recorded stream: copy to a file and to sandbox topics with
filters, publish back, rebuild the audit from the topics and find it equal to the live one, one case's
history beside its audit timeline; bad arguments exit non-zero and write nothing."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from services.replay.rebuild import compare_audit, rebuild_audit
from shared import topics
from shared.messaging.log import LogRecord, existing_topics
from tests.conftest import unique

pytestmark = pytest.mark.e2e


def replay(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "replay", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **stack.env})


def records_of(stack, topic_names, key: str | None = None) -> list:
    out = []
    for t in topic_names:
        out += [r for r in stack.read_topic(t) if key is None or r.key == key.encode()]
    return out


@pytest.fixture(scope="module")
def two_cases(stack):
    """A closed case in 西湖 (339901) and an open one in 西山 (339902)."""
    closed = stack.submit({"channel": "hotline", "description": unique("公园里有人打架"),
                           "location": {"division_code": "339901002001"}}).json()
    stack.close_case(closed["case_id"])
    other = stack.submit({"channel": "hotline", "description": unique("电动车被盗了"),
                          "location": {"division_code": "339902001001"}}).json()
    deadline = time.monotonic() + 30
    while not any(e["type"] == "org.onewindow.case.dispatched.v1" for e in stack.timeline(other["case_id"])):
        assert time.monotonic() < deadline, "the 西山 case was not dispatched"
        time.sleep(0.2)
    return closed, other


def test_copy_filters_to_a_file_and_sandbox_then_publish_back(stack, two_cases, tmp_path):
    closed, other = two_cases
    expected = records_of(stack, topics.CASE_TOPICS, closed["case_id"])
    out_file = tmp_path / "case.jsonl"
    dry = replay(stack, "copy", "--all-case-topics", "--case", closed["case_id"], "--to-file", str(out_file),
                 "--dry-run")
    assert dry.returncode == 0 and f"kept {len(expected)}" in dry.stdout and not out_file.exists(), dry.stderr

    r = replay(stack, "copy", "--all-case-topics", "--case", closed["case_id"], "--to-file", str(out_file))
    assert r.returncode == 0, r.stderr
    lines = [LogRecord.from_json(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert sorted((x.topic, x.partition, x.offset) for x in lines) == sorted(
        (x.topic, x.partition, x.offset) for x in expected)
    original = {(x.topic, x.offset): x for x in expected}
    for line in lines:  # unchanged: key, value, headers, timestamp
        o = original[(line.topic, line.offset)]
        assert (line.key, line.value, list(line.headers), line.timestamp) == (
            o.key, o.value, [(k, v) for k, v in o.headers], o.timestamp)

    # by type and time: the dispatches of the last hour, to sandbox topics
    prefix = f"sandbox.{secrets.token_hex(3)}."
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = replay(stack, "copy", "--all-case-topics", "--case", closed["case_id"], "--type",
               "org.onewindow.case.dispatched.v1", "--since", since, "--to-prefix", prefix)
    assert r.returncode == 0, r.stderr
    dispatches = [x for x in expected if dict(x.headers)["ce_type"] == b"org.onewindow.case.dispatched.v1"]
    copied = records_of(stack, [prefix + x.topic for x in dispatches])
    assert [(c.key, c.value) for c in copied] == [(d.key, d.value) for d in dispatches] and dispatches

    # division: every event of the cases in 339902, none of 339901
    div_file = tmp_path / "xishan.jsonl"
    r = replay(stack, "copy", "--all-case-topics", "--division", "339902", "--to-file", str(div_file))
    assert r.returncode == 0, r.stderr
    keys = {LogRecord.from_json(x).key.decode() for x in div_file.read_text(encoding="utf-8").splitlines()}
    assert other["case_id"] in keys and closed["case_id"] not in keys
    assert len([x for x in div_file.read_text().splitlines()
                if other["case_id"] in x]) == len(records_of(stack, topics.CASE_TOPICS, other["case_id"]))

    # a time range after everything: nothing kept
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = replay(stack, "copy", "--topic", topics.CASES_RECEIVED, "--since", later, "--to-file", str(tmp_path / "none"))
    assert r.returncode == 0 and "kept 0" in r.stdout and (tmp_path / "none").read_text() == ""

    # publish the file back into a sandbox: the same records arrive
    back = f"sandbox.{secrets.token_hex(3)}."
    r = replay(stack, "publish", str(out_file), "--to-prefix", back)
    assert r.returncode == 0 and f"published {len(lines)}" in r.stdout, r.stderr
    arrived = records_of(stack, sorted({back + x.topic for x in lines}))
    assert sorted((a.key, a.value) for a in arrived) == sorted((x.key, x.value) for x in lines)


def test_bad_arguments_exit_non_zero_and_write_nothing(stack, two_cases, tmp_path):
    closed, _ = two_cases
    target = tmp_path / "out.jsonl"
    before = asyncio.run(existing_topics(stack.env["KAFKA_BOOTSTRAP_SERVERS"]))
    received_before = len(stack.read_topic(topics.CASES_RECEIVED))
    bad_line = tmp_path / "bad.jsonl"
    good = json.dumps({"topic": "intake.cases", "key": "k", "value": "{}", "headers": []})
    bad_line.write_text(good + "\n{not json\n", encoding="utf-8")
    cases = [
        (["copy", "--topic", "no.such.topic", "--to-file", str(target)], "unknown topic"),
        (["copy", "--topic", topics.CASES_RECEIVED, "--since", "2026-11-02T00:00Z", "--until", "2026-11-01T00:00Z",
          "--to-file", str(target)], "range is empty"),
        (["copy", "--topic", topics.CASES_RECEIVED, "--since", "2026-11-02", "--to-file", str(target)], "UTC offset"),
        (["copy", "--topic", topics.CASES_RECEIVED, "--to-topic", topics.CASES_RECEIVED], "live topic"),
        (["copy", "--topic", topics.CASES_RECEIVED, "--to-prefix", "", "--to-file", str(target)], "exactly one"),
        (["copy", "--topic", topics.CASES_RECEIVED], "exactly one"),
        (["copy", "--to-file", str(target)], "--topic"),
        (["publish", str(tmp_path / "missing.jsonl"), "--to-prefix", "sandbox.x."], "no such file"),
        (["publish", str(bad_line), "--to-prefix", "sandbox.never."], "bad.jsonl:2"),
        (["publish", str(bad_line), "--to-topic", topics.CASES_RECEIVED], "bad.jsonl:2"),
        (["rebuild-audit", "--schema", "Robert'); DROP"], "invalid schema name"),
        (["rebuild-audit", "--schema", "audit"], "exists"),
        (["case", closed["case_id"], "--schema", "no such"], "invalid schema name"),
    ]
    for args, message in cases:
        out = replay(stack, *args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stdout, out.stderr)
        assert not target.exists(), args
    good_only = tmp_path / "good.jsonl"
    good_only.write_text(good + "\n", encoding="utf-8")
    out = replay(stack, "publish", str(good_only), "--to-topic", topics.CASES_RECEIVED)
    assert out.returncode == 2 and "live topic" in out.stderr
    after = asyncio.run(existing_topics(stack.env["KAFKA_BOOTSTRAP_SERVERS"]))
    assert after == before, "no topic was created"
    assert len(stack.read_topic(topics.CASES_RECEIVED)) == received_before, "nothing was published"


def test_rebuilt_audit_matches_the_live_one_and_a_case_replays(stack, two_cases):
    closed, other = two_cases
    env = stack.env
    schema = f"rebuild_{secrets.token_hex(3)}"
    result = asyncio.run(rebuild_audit(env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"], schema,
                                       list(topics.CASE_TOPICS)))
    assert result.recorded > 0 and result.read >= result.recorded
    deadline = time.monotonic() + 30
    while True:  # the live audit may still be recording the last events the rebuild read
        c = asyncio.run(compare_audit(env["DATABASE_URL"], "audit", schema, result.ends))
        if c.matches or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert c.matches, (c.first_difference, {t: v for t, v in c.counts.items() if v[0] != v[1]})
    assert sum(v[1] for v in c.counts.values()) == result.recorded
    assert c.cases[0] == c.cases[1] and c.heads_equal + c.heads_differ == c.cases[0]

    # the command: rebuild and compare, exit 0 on a match (retried once: the live audit may lag a batch)
    for attempt in range(2):
        out = replay(stack, "rebuild-audit", "--schema", f"rebuild_{secrets.token_hex(3)}")
        if out.returncode == 0:
            break
    assert out.returncode == 0 and "match" in out.stdout, out.stdout + out.stderr
    assert "org.onewindow.case.received.v1" in out.stdout

    # one case's history: topics and audit agree for a closed case
    out = replay(stack, "case", closed["case_id"])
    assert out.returncode == 0 and "0 in only one of them" in out.stdout, out.stdout + out.stderr
    assert "case.closed" in out.stdout
    # against the rebuild taken before its callback: the topics have events that trace lacks
    stack.close_case(other["case_id"])
    out = replay(stack, "case", other["case_id"], "--schema", schema)
    assert out.returncode == 1 and "MISSING" in out.stdout and "case.closed" in out.stdout, out.stdout + out.stderr
