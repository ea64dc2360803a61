"""The topology (shared/topics.py) is the one source: every copy is generated from it or checked
against it here, and each check is shown to fail on a deliberately drifted copy."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from shared import topics
from shared.contracts import asyncapi
from shared.runtime import consumer_groups

ROOT = Path(__file__).resolve().parents[2]


def drift(committed: str, generated: str) -> list[str]:
    """The lines in which a committed copy differs from what the topology generates."""
    return [line for line in difflib.unified_diff(committed.splitlines(), generated.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_the_acl_script_is_the_one_generated_from_the_topology():
    committed = (ROOT / "deploy" / "kafka-acls.sh").read_text(encoding="utf-8")
    assert drift(committed, topics.acl_script()) == [], "run `onewindow contracts topology`"


def test_a_hand_edited_acl_script_is_found():
    generated = topics.acl_script()
    widened = generated.replace("allow police Write feedback.police", "allow police Write feedback.court")
    assert drift(widened, generated) == ["-allow police Write feedback.court", "+allow police Write feedback.police"]


def test_the_topic_table_of_the_events_document_is_the_generated_one():
    committed = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert drift(committed, topics.with_events_table(committed)) == [], "run `onewindow contracts topology`"


def test_a_drifted_topic_table_is_found():
    document = topics.with_events_table((ROOT / "docs" / "events.md").read_text(encoding="utf-8"))
    drifted = "\n".join(line for line in document.splitlines() if not line.startswith("| `court.referrals`"))
    assert len(drift(drifted, topics.with_events_table(drifted))) == 1


@pytest.mark.parametrize("service", sorted(topics.SERVICES))
def test_each_service_document_says_what_the_service_consumes_and_produces(service):
    doc = asyncapi.service_document(service)
    by_action: dict[str, set[str]] = {"receive": set(), "send": set()}
    for op in doc["operations"].values():
        by_action[op["action"]].add(doc["channels"][op["channel"]["$ref"].split("/")[-1]]["address"])
    party = topics.SERVICES[service]
    assert by_action == {"receive": set(party.consumes), "send": set(party.produces)}


def test_audit_reads_the_dead_letters_and_no_rejections():
    audit = topics.SERVICES["audit"]
    assert topics.DEAD_LETTER in audit.consumes
    assert not any(t.startswith("rejections.") for t in audit.consumes)


def test_every_topic_is_created_kept_published_and_read():
    parties = [*topics.SERVICES.values(), *topics.DEPARTMENTS.values()]
    assert set(topics.RETENTION_MS) == set(topics.ALL_TOPICS)
    assert set(topics.PUBLISHERS) == set(topics.ALL_TOPICS) - {topics.DEAD_LETTER}
    for party in parties:
        assert set(party.consumes) | set(party.produces) <= set(topics.ALL_TOPICS), party.name
    produced = {t for p in parties for t in p.produces}
    assert set(topics.ALL_TOPICS) - produced == {topics.SUBMISSIONS}  # written by submitting systems


def test_a_party_publishes_only_where_its_source_may():
    for party in [*topics.SERVICES.values(), *topics.DEPARTMENTS.values()]:
        for topic in party.produces:
            if topic != topics.DEAD_LETTER:
                sources = topics.PUBLISHERS[topic].sources
                assert any(party.source.startswith(s) for s in sources), (party.name, topic)


def test_a_service_is_wired_to_exactly_its_consumer_groups():
    assert [c.group for c in consumer_groups("audit", {"audit": None, "audit-deadletters": None})] == [
        "audit", "audit-deadletters"]
    with pytest.raises(ValueError, match="topology has groups"):
        consumer_groups("audit", {"audit": None})
    with pytest.raises(ValueError, match="topology has groups"):
        consumer_groups("router", {"router": None, "router-extra": None})
