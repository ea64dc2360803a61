"""The topology: every topic, who may publish what on it, which party consumes and produces which
topics, and how the topics are created."""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.events import (
    CaseRated,
    CaseSplit,
    ReopenRequested,
    ReturnHeldForReview,
    ReturnReviewed,
    CallbackRecorded,
    CaseClosed,
    CaseClosedDirectly,
    CaseDispatched,
    CaseMerged,
    CaseRefused,
    ClockPaused,
    ClockResumed,
    DispatchUrged,
    ExtensionDecided,
    ExtensionRequested,
    ResolutionReviewed,
    RiskChanged,
    RiskIdentified,
    CaseDuplicateReported,
    CaseEscalated,
    CaseReceived,
    CaseReopened,
    CaseRouted,
    DigestPublished,
    ConfirmationDecided,
    CourtReferral,
    DispatchAccepted,
    DispatchProgress,
    DispatchResolved,
    DispatchReturned,
    DispatchTransferred,
    FeedbackRejected,
    ManualTriageRequired,
    MediationToCourt,
    MediationTransitioned,
    SubmissionRejected,
    SupervisionNotice,
    TriageCorrected,
    UnitKind,
)
from shared.contracts.submissions import SUBMISSION_TYPE


SUBMISSIONS = "intake.submissions"  # departmental systems submit cases as CloudEvents
SUBMISSION_REJECTIONS = "intake.rejections"  # intake → submitter: why a Kafka submission was refused
CASES_RECEIVED = "intake.cases"  # intake: case received, duplicate reported
ROUTER_DECISIONS = "router.decisions"  # router: decisions, corrections, supervision notices, escalations, callbacks, closure
MEDIATION_EVENTS = "mediation.events"  # mediation lifecycle: every transition
RISK_EVENTS = "mediation.risks"  # the risk register (重大不稳定问题清单): every risk identified or changed
COURT_REFERRALS = "court.referrals"  # court → mediation: referrals (诉前调解), confirmation answers
COURT_MEDIATION = "court.mediation"  # mediation → court: outcomes, 司法确认 requests, litigation hand-offs
DEAD_LETTER = "deadletter"  # poison records: original bytes + headers + the error
DIGESTS = "audit.digests"  # audit: 日研判, each county's daily digest was made (subscribers fetch the page)


def dispatch_topic(kind: UnitKind | str) -> str:
    """The topic a unit kind reads its dispatches from."""
    return f"dispatch.{UnitKind(kind).value}"


def feedback_topic(kind: UnitKind | str) -> str:
    """The topic a unit kind writes its feedback (accept, resolve, ...) to."""
    return f"feedback.{UnitKind(kind).value}"


def rejection_topic(kind: UnitKind | str) -> str:
    """The topic that tells a department why its feedback was refused (it may read only its own)."""
    return f"rejections.{UnitKind(kind).value}"


# Topics whose records carry personal data (a submission names its reporter, phone, address): a dead
# letter of one keeps its error, envelope and a sha256 of the value, never the value itself.
PERSONAL_TOPICS = frozenset([SUBMISSIONS])

DISPATCH_TOPICS = [dispatch_topic(k) for k in UnitKind]
REJECTION_TOPICS = [rejection_topic(k) for k in UnitKind]
FEEDBACK_TOPICS = [feedback_topic(k) for k in UnitKind]
CASE_TOPICS = [CASES_RECEIVED, ROUTER_DECISIONS, MEDIATION_EVENTS, COURT_REFERRALS, COURT_MEDIATION,
               *DISPATCH_TOPICS, *FEEDBACK_TOPICS, RISK_EVENTS]
ALL_TOPICS = [SUBMISSIONS, SUBMISSION_REJECTIONS, *CASE_TOPICS, *REJECTION_TOPICS, DIGESTS, DEAD_LETTER]


# ---------------------------------------------------------------- the topology, as data
# Who publishes which event types on which topic, and which party consumes and produces what. Every
# other copy is generated from these tables or tested against them (tests/unit/test_topology.py):
# the services' subscriptions (shared/runtime.py), the AsyncAPI documents, topic creation, the Kafka
# ACL script (deploy/kafka-acls.sh) and the topic table of docs/events.md.

FEEDBACK_TYPES = [m.EVENT_TYPE for m in (DispatchAccepted, DispatchProgress, DispatchReturned, DispatchTransferred,
                                         DispatchResolved, ExtensionRequested)]
DISPATCH_TYPES = [m.EVENT_TYPE for m in (CaseDispatched, SupervisionNotice, DispatchUrged, ExtensionDecided,
                                         ResolutionReviewed, ReturnReviewed)]


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


def service_source(name: str) -> str:
    """The CloudEvents source of a OneWindow service's events."""
    return f"/onewindow/{name}"


def department_source(kind: UnitKind | str) -> str:
    """The CloudEvents source prefix of a department's systems (mediation's is OneWindow's service)."""
    kind = UnitKind(kind)
    return service_source("mediation") if kind is UnitKind.MEDIATION else f"/departments/{kind.value}"


# The contract of every topic: a department's feedback topic carries only feedback types from that
# department's systems; a service's topics only its own events. Consumers refuse anything else
# before it changes any state (dead letter with the reason; departments are told on their
# rejections topic).
PUBLISHERS: dict[str, Publishers] = {
    SUBMISSIONS: Publishers(("/",), (SUBMISSION_TYPE,)),  # any registered submitting system
    SUBMISSION_REJECTIONS: Publishers((service_source("intake"),), (SubmissionRejected.EVENT_TYPE,)),
    CASES_RECEIVED: Publishers((service_source("intake"),), (CaseReceived.EVENT_TYPE, CaseDuplicateReported.EVENT_TYPE,
                                                             CaseRated.EVENT_TYPE, ReopenRequested.EVENT_TYPE)),
    ROUTER_DECISIONS: Publishers((service_source("router"),), tuple(m.EVENT_TYPE for m in (
        CaseRouted, ManualTriageRequired, TriageCorrected, SupervisionNotice, CaseEscalated, CallbackRecorded,
        CaseReopened, CaseClosed, CaseClosedDirectly, CaseRefused, CaseMerged, ResolutionReviewed, DispatchUrged,
        ClockPaused, ClockResumed, ExtensionDecided, ReturnHeldForReview, ReturnReviewed, CaseSplit))),
    MEDIATION_EVENTS: Publishers((service_source("mediation"),), (MediationTransitioned.EVENT_TYPE,)),
    RISK_EVENTS: Publishers((service_source("mediation"),), (RiskIdentified.EVENT_TYPE, RiskChanged.EVENT_TYPE)),
    COURT_REFERRALS: Publishers((department_source(UnitKind.COURT),), (CourtReferral.EVENT_TYPE,
                                                                       ConfirmationDecided.EVENT_TYPE)),
    COURT_MEDIATION: Publishers((service_source("mediation"),), (MediationToCourt.EVENT_TYPE,)),
    **{dispatch_topic(k): Publishers((service_source("router"),), tuple(DISPATCH_TYPES)) for k in UnitKind},
    **{feedback_topic(k): Publishers((department_source(k),), tuple(FEEDBACK_TYPES)) for k in UnitKind},
    **{rejection_topic(k): Publishers((service_source("router"),), (FeedbackRejected.EVENT_TYPE,))
       for k in UnitKind},
    DIGESTS: Publishers((service_source("audit"),), (DigestPublished.EVENT_TYPE,)),
}


def refusal(topic: str, event_type: str, source: str) -> str | None:
    """Why an event may not arrive on a topic (unknown topics refuse everything), or None."""
    publishers = PUBLISHERS.get(topic)
    if publishers is None:
        return f"{topic} has no publishing contract"
    reason = publishers.refusal(event_type, source)
    return f"{topic}: {reason}" if reason else None


@dataclass(frozen=True)
class Consumer:
    """A consumer group: the topics it reads, in batches, into one handler of its service."""

    group: str
    topics: tuple[str, ...]
    validate_contracts: bool = True  # decode each event's data with its contract model
    decode_envelopes: bool = True  # False: raw records (dead letters are not CloudEvents)
    enforce_publishers: bool = True  # refuse what the topic's publishing contract does not allow
    prefixed: bool = False  # a department may name its groups freely under this prefix


@dataclass(frozen=True)
class Party:
    """A OneWindow service or a department's systems: its consumer groups and the topics it writes."""

    name: str
    consumers: tuple[Consumer, ...]
    produces: tuple[str, ...]
    source: str

    @property
    def consumes(self) -> list[str]:
        """Every topic the party reads, in order, once."""
        return list(dict.fromkeys(t for c in self.consumers for t in c.topics))

    def consumer(self, group: str) -> Consumer:
        """One of the party's consumer groups by its id."""
        return next(c for c in self.consumers if c.group == group)


SERVICES: dict[str, Party] = {p.name: p for p in (
    Party("intake", (
        # any submitting system may publish here; intake itself refuses other types and answers the
        # submitter on intake.rejections (which it can read; the dead letters it cannot)
        Consumer("intake", (SUBMISSIONS,), validate_contracts=False, enforce_publishers=False),
        # the status a citizen or a submitter sees follows the router's decisions and the feedback
        Consumer("intake-status", (ROUTER_DECISIONS, *FEEDBACK_TOPICS), validate_contracts=False),
    ), (CASES_RECEIVED, SUBMISSION_REJECTIONS, DEAD_LETTER), service_source("intake")),
    Party("router", (
        Consumer("router", (CASES_RECEIVED, *FEEDBACK_TOPICS)),
    ), (ROUTER_DECISIONS, *DISPATCH_TOPICS, *REJECTION_TOPICS, DEAD_LETTER), service_source("router")),
    Party("mediation", (
        Consumer("mediation", (dispatch_topic(UnitKind.MEDIATION), COURT_REFERRALS)),
        # the risk register watches every received case for clusters (same place and matter within
        # a window, repeat reports, group signs)
        Consumer("mediation-risks", (CASES_RECEIVED,)),
    ), (feedback_topic(UnitKind.MEDIATION), MEDIATION_EVENTS, COURT_MEDIATION, RISK_EVENTS, DEAD_LETTER),
        service_source("mediation")),
    Party("audit", (
        # the trace keeps everything that was sent, refused or not (全程留痕), even of unknown types
        Consumer("audit", tuple(CASE_TOPICS), validate_contracts=False, enforce_publishers=False),
        Consumer("audit-deadletters", (DEAD_LETTER,), decode_envelopes=False),
    ), (DIGESTS,), service_source("audit")),
)}

# Departments' systems outside OneWindow (mediation is OneWindow's own service). Each may read its
# dispatches and the rejections of its feedback and write its feedback; the court also refers
# disputes and answers 司法确认 requests.
DEPARTMENTS: dict[str, Party] = {
    k.value: Party(
        k.value,
        (Consumer(f"{k.value}-", (dispatch_topic(k), rejection_topic(k),
                                  *((COURT_MEDIATION,) if k is UnitKind.COURT else ())), prefixed=True),),
        (feedback_topic(k), *((COURT_REFERRALS,) if k is UnitKind.COURT else ())),
        department_source(k))
    for k in UnitKind if k is not UnitKind.MEDIATION
}


def acl_script() -> str:
    """The Kafka ACL script of the secure deployment (deploy/kafka-acls.sh), generated from the
    topology: each principal may read and write only its own topics and use only its own groups."""
    lines = [
        "#!/usr/bin/env bash",
        "# GENERATED from shared/topics.py by `onewindow contracts acls` -- do not edit by hand.",
        "# SCRAM users and ACLs: each principal may touch only its own topics. Run once by the `kafka-acls`",
        "# job of deploy/compose.secure.yml; passwords are read from deploy/secrets/<principal>.",
        "set -euo pipefail",
        "K=/opt/kafka/bin",
        'ADMIN=(--bootstrap-server "$BOOTSTRAP" --command-config /deploy/secrets/admin.properties)',
        "",
        "user() {  # user NAME: create or update the SCRAM credential from its secret file",
        '  "$K/kafka-configs.sh" "${ADMIN[@]}" --alter --entity-type users --entity-name "$1" \\',
        '    --add-config "SCRAM-SHA-512=[password=$(cat "/deploy/secrets/$1")]"',
        "}",
        "allow() {  # allow PRINCIPAL OPERATION TOPIC",
        '  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$1" --operation "$2" --topic "$3"',
        "}",
        "group() {  # group PRINCIPAL GROUP [prefixed]: may use its consumer group (or groups by prefix)",
        '  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$1" --operation Read --group "$2" \\',
        '    --resource-pattern-type "${3:-literal}"',
        "}",
    ]

    def grants(principal: str, parties: list[Party], groups: list[Consumer] | None = None) -> None:
        lines.extend(["", f"user {principal}"])
        for c in groups if groups is not None else [c for p in parties for c in p.consumers]:
            lines.append(f"group {principal} {c.group}" + (" prefixed" if c.prefixed else ""))
        for t in dict.fromkeys(t for p in parties for t in p.consumes):
            lines.append(f"allow {principal} Read {t}")
        for t in dict.fromkeys(t for p in parties for t in p.produces):
            lines.append(f"allow {principal} Write {t}")

    for dept in DEPARTMENTS.values():
        grants(dept.name, [dept])
    for service in SERVICES.values():
        grants(service.name, [service])
    # the department simulator plays every outside department under one principal and one group
    grants("simulator", list(DEPARTMENTS.values()), [Consumer("department-simulator", ())])
    lines += ["", 'echo "ACLs in place"', ""]
    return "\n".join(lines)


def events_table() -> str:
    """The topic table of docs/events.md (generated; tested against the document)."""
    rows = ["| topic | published by (CloudEvents source) | event types | consumed by |", "|---|---|---|---|"]
    parties = [*SERVICES.values(), *DEPARTMENTS.values()]
    for t in ALL_TOPICS:
        pub = PUBLISHERS.get(t)
        sources = ", ".join(f"`{s}`" for s in pub.sources) if pub else "every consumer (dead letters)"
        types = ", ".join(f"`{x.removeprefix('org.onewindow.')}`" for x in pub.types) if pub else \
            ("the poison record as it came (of a topic with personal data: its envelope and a sha256), "
             "plus `dlq_*` headers")
        readers = ", ".join(p.name for p in parties if t in p.consumes) or "-"
        rows.append(f"| `{t}` | {sources} | {types} | {readers} |")
    return "\n".join(rows)


TABLE_START, TABLE_END = "<!-- topology: generated by `onewindow contracts topology` -->", "<!-- /topology -->"


def with_events_table(document: str) -> str:
    """docs/events.md with its generated topic table replaced by the topology's current one."""
    head, rest = document.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_START}\n{events_table()}\n{TABLE_END}{tail}"


DAY_MS = 24 * 3600 * 1000
# Retention per topic, in one place (the topic init job and the services create topics from it).
# Case topics keep a year: they are the event log that replay and audit rebuilds read.
RETENTION_MS: dict[str, int] = {
    **{t: 365 * DAY_MS for t in CASE_TOPICS},
    SUBMISSIONS: 30 * DAY_MS,
    SUBMISSION_REJECTIONS: 30 * DAY_MS,
    **{t: 30 * DAY_MS for t in REJECTION_TOPICS},
    DEAD_LETTER: 90 * DAY_MS,
    DIGESTS: 365 * DAY_MS,  # a year of 日研判, like the case topics
}


# Topics that parties outside OneWindow write: the broker stamps their records' time itself
# (LogAppendTime), so a sender cannot backdate the time that metrics count on.
OUTSIDE_WRITTEN = frozenset([SUBMISSIONS, *(t for d in DEPARTMENTS.values() for t in d.produces)])


def topic_config(topic: str) -> dict[str, str]:
    """Kafka topic configuration of a OneWindow topic."""
    config = {"retention.ms": str(RETENTION_MS.get(topic, 7 * DAY_MS))}
    if topic in OUTSIDE_WRITTEN:
        config["message.timestamp.type"] = "LogAppendTime"
    return config


async def ensure_topics(bootstrap_servers: str, partitions: int, topics: list[str] | None = None,
                        replication: int = 1, **client: object) -> None:
    """Create any missing topic (idempotent; a broker that lost its topics gets them back)."""
    # imported here: the topology is data that pure domain modules read without loading a Kafka client
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

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
