"""Who may publish what on each topic: departments only their own feedback, services only their own
events; anything else is refused before it changes any state (the consumers check this table)."""

from __future__ import annotations

from uuid import uuid4

import pytest

from shared import topics
from shared.contracts import asyncapi
from shared.topics import UnitKind

FEEDBACK = "org.onewindow.dispatch.accepted.v1"
FORGED = ["org.onewindow.case.received.v1", "org.onewindow.case.closed.v1", "org.onewindow.case.escalated.v1",
          "org.onewindow.case.dispatched.v1", "org.onewindow.dispatch.teleported.v1"]


@pytest.mark.parametrize("kind", [UnitKind.POLICE, UnitKind.COURT, UnitKind.PETITION])
def test_a_department_topic_carries_only_that_departments_feedback(kind):
    topic = topics.feedback_topic(kind)
    assert topics.refusal(topic, FEEDBACK, f"/departments/{kind.value}/110") is None
    assert topics.refusal(topic, FEEDBACK, f"/departments/{kind.value}") is None
    for event_type in FORGED:
        assert "is not published on this topic" in topics.refusal(topic, event_type, f"/departments/{kind.value}/x")
    for source in ("/onewindow/router", "/departments/other", f"/departments/{kind.value}x/1", "/test", ""):
        assert "may not publish here" in topics.refusal(topic, FEEDBACK, source), source


def test_service_topics_take_only_the_services_own_events():
    assert topics.refusal(topics.ROUTER_DECISIONS, "org.onewindow.case.closed.v1", "/onewindow/router") is None
    assert topics.refusal(topics.ROUTER_DECISIONS, "org.onewindow.case.closed.v1", "/departments/police/x")
    assert topics.refusal(topics.CASES_RECEIVED, "org.onewindow.case.received.v1", "/onewindow/router")
    assert topics.refusal(topics.feedback_topic(UnitKind.MEDIATION), FEEDBACK, "/onewindow/mediation") is None
    assert topics.refusal(topics.feedback_topic(UnitKind.MEDIATION), FEEDBACK, "/departments/mediation/x")
    assert topics.refusal(topics.COURT_REFERRALS, "org.onewindow.court.referral.v1", "/departments/court/3399") is None
    assert topics.refusal("no.such.topic", FEEDBACK, "/onewindow/router") == "no.such.topic has no publishing contract"


def test_every_topic_has_a_contract_and_the_asyncapi_documents_follow_it():
    assert set(topics.PUBLISHERS) == set(topics.ALL_TOPICS) - {topics.DEAD_LETTER}
    assert asyncapi.TOPIC_MESSAGES == {t: list(p.types) for t, p in topics.PUBLISHERS.items()}


def test_an_id_claimed_on_another_topic_does_not_make_the_real_event_a_repeat():
    from aiokafka import ConsumerRecord

    from shared.cloudevents import CloudEvent
    from shared.contracts import CaseEscalated
    from shared.messaging.consumer import Inbound

    data = CaseEscalated(case_id=uuid4(), dispatch_id=uuid4(), from_unit_id="police-339901001",
                         to_unit_id="police-339901", to_level="county", reason="resolve deadline passed")
    ev = CloudEvent.of(data, source="/onewindow/router", event_id="derived-escalation-id")

    def on(topic: str) -> Inbound:
        return Inbound(ConsumerRecord(topic, 0, 1, 0, 0, None, b"", None, 0, 0, []), ev, data)

    forged, real = on("feedback.police"), on("router.decisions")
    assert forged.inbox_key != real.inbox_key
    assert on("router.decisions").inbox_key == real.inbox_key  # a redelivery is still a repeat


def test_audit_refuses_to_start_without_a_signing_key(tmp_path, monkeypatch):
    from services.audit.entry import create_app
    from shared.settings import Settings

    monkeypatch.delenv("ONEWINDOW_AUDIT_SIGNING_KEY", raising=False)
    with pytest.raises(ValueError, match="no audit signing key"):
        create_app(Settings(_env_file=None))
    empty = tmp_path / "key"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no audit signing key"):
        create_app(Settings(audit_signing_key_file=empty))
    empty.write_text("a-real-key\n")
    assert Settings(audit_signing_key_file=empty).signing_key() == b"a-real-key"
