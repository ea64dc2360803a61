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
MEDIATION_EVENTS = "mediation.events"  # mediation lifecycle (later issues)
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
CASE_TOPICS = [CASES_RECEIVED, ROUTER_DECISIONS, MEDIATION_EVENTS, *DISPATCH_TOPICS, *FEEDBACK_TOPICS]
ALL_TOPICS = [SUBMISSIONS, SUBMISSION_REJECTIONS, *CASE_TOPICS, *REJECTION_TOPICS, DEAD_LETTER]


async def ensure_topics(bootstrap_servers: str, partitions: int, topics: list[str] | None = None) -> None:
    """Create any missing topic (idempotent; a broker that lost its topics gets them back)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in (topics or ALL_TOPICS) if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
            except TopicAlreadyExistsError:
                pass  # another process created them at the same moment
    finally:
        await admin.close()
