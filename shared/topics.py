"""The topic registry: every topic OneWindow uses, who writes it, and how to create them."""

from __future__ import annotations

from dataclasses import dataclass
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


# ---------------------------------------------------------------- who may publish what, where

FEEDBACK_TYPES = [f"org.onewindow.dispatch.{s}.v1" for s in ("accepted", "progress", "returned", "transferred",
                                                                  "resolved")]
DISPATCH_TYPES = ["org.onewindow.case.dispatched.v1", "org.onewindow.supervision.notice.v1"]
SUBMISSION_TYPE = "org.onewindow.case.submission.v1"


@dataclass(frozen=True)
class Publishers:
    """Who may publish on a topic (CloudEvents sources, by path prefix) and which event types."""

    sources: tuple[str, ...]
    types: tuple[str, ...]

    def refusal(self, event_type: str, source: str) -> str | None:
        """Why an event may not arrive here, or None when it may."""
        if event_type not in self.types:
            return f"{event_type} is not published on this topic (it carries {', '.join(self.types)})"
        if not any(source == p or source.startswith(p.rstrip("/") + "/") for p in self.sources):
            return f"source {source!r} may not publish here (only {', '.join(self.sources)})"
        return None


def _service(name: str) -> tuple[str, ...]:
    return (f"/onewindow/{name}",)


def _department(kind: UnitKind) -> tuple[str, ...]:
    # OneWindow's own mediation service answers for the mediation kind; the others are outside systems
    return _service("mediation") if kind is UnitKind.MEDIATION else (f"/departments/{kind.value}",)


# The contract of every topic OneWindow consumes: a department's feedback topic carries only feedback
# types from that department's systems; a service's topics only its own events. Consumers refuse
# anything else before it changes any state (dead letter with the reason; departments are told on
# their rejections topic). The AsyncAPI documents are generated from this table, and Kafka ACLs
# (deploy/) grant each department write access to its own feedback topic only.
PUBLISHERS: dict[str, Publishers] = {
    SUBMISSIONS: Publishers(("/",), (SUBMISSION_TYPE,)),  # any registered submitting system
    SUBMISSION_REJECTIONS: Publishers(_service("intake"), ("org.onewindow.submission.rejected.v1",)),
    CASES_RECEIVED: Publishers(_service("intake"), ("org.onewindow.case.received.v1",
                                                     "org.onewindow.case.duplicate_reported.v1")),
    ROUTER_DECISIONS: Publishers(_service("router"), (
        "org.onewindow.case.routed.v1", "org.onewindow.case.manual_triage_required.v1",
        "org.onewindow.case.triage_corrected.v1", "org.onewindow.supervision.notice.v1",
        "org.onewindow.case.escalated.v1", "org.onewindow.case.callback_recorded.v1",
        "org.onewindow.case.reopened.v1", "org.onewindow.case.closed.v1")),
    MEDIATION_EVENTS: Publishers(_service("mediation"), ("org.onewindow.mediation.transitioned.v1",)),
    COURT_REFERRALS: Publishers(("/departments/court",), ("org.onewindow.court.referral.v1",
                                                          "org.onewindow.court.confirmation_decided.v1")),
    COURT_MEDIATION: Publishers(_service("mediation"), ("org.onewindow.mediation.to_court.v1",)),
    **{dispatch_topic(k): Publishers(_service("router"), tuple(DISPATCH_TYPES)) for k in UnitKind},
    **{feedback_topic(k): Publishers(_department(k), tuple(FEEDBACK_TYPES)) for k in UnitKind},
    **{rejection_topic(k): Publishers(_service("router"), ("org.onewindow.feedback.rejected.v1",))
       for k in UnitKind},
}


def refusal(topic: str, event_type: str, source: str) -> str | None:
    """Why an event may not arrive on a topic (unknown topics refuse everything), or None."""
    publishers = PUBLISHERS.get(topic)
    if publishers is None:
        return f"{topic} has no publishing contract"
    reason = publishers.refusal(event_type, source)
    return f"{topic}: {reason}" if reason else None


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
