"""The topic registry: every topic OneWindow uses, who writes it, and how to create them."""

from __future__ import annotations

from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


class UnitKind(StrEnum):
    """The kinds of unit a case is dispatched to; each has its own dispatch and feedback topic."""

    POLICE = "police"
    COURT = "court"
    PETITION = "petition"
    MEDIATION = "mediation"


SUBMISSIONS = "intake.submissions"  # departmental systems submit cases as CloudEvents
SUBMISSION_REJECTIONS = "intake.rejections"  # intake → submitter: why a Kafka submission was refused
CASES_RECEIVED = "intake.cases"  # intake: case received, duplicate reported
ROUTER_DECISIONS = "router.decisions"  # router: routed, manual triage, closed (later: supervision)
MEDIATION_EVENTS = "mediation.events"  # mediation lifecycle: every transition
COURT_REFERRALS = "court.referrals"  # court → mediation: referrals (诉前调解), confirmation answers
COURT_MEDIATION = "court.mediation"  # mediation → court: outcomes, 司法确认 requests, litigation hand-offs
DEAD_LETTER = "deadletter"  # poison records: original bytes + headers + the error


def dispatch_topic(kind: UnitKind | str) -> str:
    """The topic a unit kind reads its dispatches from."""
    return f"dispatch.{UnitKind(kind).value}"


def feedback_topic(kind: UnitKind | str) -> str:
    """The topic a unit kind writes its feedback (accept, resolve, ...) to."""
    return f"feedback.{UnitKind(kind).value}"


def rejection_topic(kind: UnitKind | str) -> str:
    """The topic that tells a department why its feedback was refused (it may read only its own)."""
    return f"rejections.{UnitKind(kind).value}"


DISPATCH_TOPICS = [dispatch_topic(k) for k in UnitKind]
REJECTION_TOPICS = [rejection_topic(k) for k in UnitKind]
FEEDBACK_TOPICS = [feedback_topic(k) for k in UnitKind]
CASE_TOPICS = [CASES_RECEIVED, ROUTER_DECISIONS, MEDIATION_EVENTS, COURT_REFERRALS, COURT_MEDIATION,
               *DISPATCH_TOPICS, *FEEDBACK_TOPICS]
ALL_TOPICS = [SUBMISSIONS, SUBMISSION_REJECTIONS, *CASE_TOPICS, *REJECTION_TOPICS, DEAD_LETTER]


DAY_MS = 24 * 3600 * 1000
# Retention per topic, in one place (the topic init job and the services create topics from it).
# Case topics keep a year: they are the event log that replay and audit rebuilds read.
RETENTION_MS: dict[str, int] = {
    **{t: 365 * DAY_MS for t in CASE_TOPICS},
    SUBMISSIONS: 30 * DAY_MS,
    SUBMISSION_REJECTIONS: 30 * DAY_MS,
    **{t: 30 * DAY_MS for t in REJECTION_TOPICS},
    DEAD_LETTER: 90 * DAY_MS,
}


def topic_config(topic: str) -> dict[str, str]:
    """Kafka topic configuration of a OneWindow topic."""
    return {"retention.ms": str(RETENTION_MS.get(topic, 7 * DAY_MS))}


async def ensure_topics(bootstrap_servers: str, partitions: int, topics: list[str] | None = None,
                        replication: int = 1, **client: object) -> None:
    """Create any missing topic (idempotent; a broker that lost its topics gets them back)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in (topics or ALL_TOPICS) if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, partitions, replication, topic_configs=topic_config(t))
                                           for t in missing])
            except TopicAlreadyExistsError:
                pass  # another process created them at the same moment
    finally:
        await admin.close()
