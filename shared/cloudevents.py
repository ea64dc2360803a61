"""CloudEvents 1.0 in Kafka binary mode: `ce_*` headers, `content-type`, JSON data in the value.

The Kafka key is the case id (the event's subject) everywhere, so a case's history is ordered.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Iterable

import orjson
from pydantic import ValidationError

from shared.contracts import Contract, model_for

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
# Namespace of every id OneWindow derives from its input (so replays yield the same ids).
ID_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4d8e-9a51-0e5d0b6f1c11")
REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject")


class EnvelopeError(ValueError):
    """A Kafka record that is not a valid OneWindow CloudEvent (missing attribute, bad JSON, ...)."""


class ContractError(ValueError):
    """A CloudEvent whose type is unknown or whose data breaks the type's contract."""


def derive_id(*parts: object) -> str:
    """A deterministic event id from the input it was derived from."""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(str(p) for p in parts)))


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


_ACTOR_TEXT = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII: ids, roles and unit codes, never free text


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did what an event records (全程留痕): a person's token subject and role (and unit or office),
    or, for a machine act, the service itself. Carried as the CloudEvents extension attributes
    `actor`, `actorrole` and `actorunit` (Kafka headers `ce_actor`, `ce_actorrole`, `ce_actorunit`)."""

    id: str
    role: str
    unit: str | None = None

    @classmethod
    def service(cls, source: str) -> "Actor":
        """A service acting on its own (routing, supervision, a relay): named by its source."""
        return cls(id=source, role="service")

    def headers(self) -> list[tuple[str, bytes]]:
        """The actor's binary-mode headers."""
        h = [("ce_actor", self.id.encode()), ("ce_actorrole", self.role.encode())]
        if self.unit:
            h.append(("ce_actorunit", self.unit.encode()))
        return h

    def as_json(self) -> dict[str, str]:
        """The actor as the trace shows it."""
        return {"id": self.id, "role": self.role, **({"unit": self.unit} if self.unit else {})}


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One event as it travels on Kafka."""

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]
    traceparent: str | None = None
    extra_headers: tuple[tuple[str, bytes], ...] = field(default=())
    actor: Actor | None = None

    @classmethod
    def of(cls, data: Contract, *, source: str, event_id: str, time: datetime | None = None,
           actor: Actor | None = None) -> "CloudEvent":
        """Wrap a contract model as an event about its subject (a case id for case events), done by
        `actor` (the service itself when none is given)."""
        return cls(
            id=event_id,
            source=source,
            type=data.EVENT_TYPE,
            subject=data.subject(),
            time=time or utcnow(),
            data=data.model_dump(mode="json"),
            actor=actor or Actor.service(source),
        )

    def with_traceparent(self, traceparent: str | None) -> "CloudEvent":
        """The same event continuing the given trace."""
        return replace(self, traceparent=traceparent)

    def key(self) -> bytes:
        """The Kafka key: the case id."""
        return self.subject.encode()

    def value(self) -> bytes:
        """The Kafka value: the JSON data."""
        return orjson.dumps(self.data)  # compact UTF-8, as json.dumps(ensure_ascii=False) without spaces

    def headers(self) -> list[tuple[str, bytes]]:
        """Binary-mode headers (plus W3C traceparent when known)."""
        h = [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.actor is not None:
            h.extend(self.actor.headers())
        if self.traceparent:
            h.append(("traceparent", self.traceparent.encode()))
        h.extend(self.extra_headers)
        return h

    def model(self) -> Contract:
        """The data validated against the contract of the event's type."""
        try:
            model = model_for(self.type)
        except KeyError:
            raise ContractError(f"unknown event type {self.type!r}") from None
        try:
            parsed = model.model_validate(self.data)
        except ValidationError as exc:
            raise ContractError(f"{self.type}: {_summarise(exc)}") from None
        if parsed.subject() != self.subject:
            raise ContractError("the data's case id (or subject) differs from ce_subject")
        return parsed


def _summarise(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:10])


def header_map(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as a str->str dict (undecodable values are an envelope error)."""
    out: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            out[name] = (raw or b"").decode()
        except UnicodeDecodeError:
            raise EnvelopeError(f"header {name!r} is not UTF-8") from None
    return out


_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash before "u0000"


def decode(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | None]] | None) -> CloudEvent:
    """Parse a Kafka record in binary mode; raise EnvelopeError when it is not a valid CloudEvent."""
    h = header_map(headers)
    missing = [name for name in REQUIRED if not h.get(name)]
    if missing:
        raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
    if h["ce_specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported specversion {h['ce_specversion']!r}")
    if key is None or key.decode(errors="replace") != h["ce_subject"]:
        raise EnvelopeError("Kafka key must equal ce_subject (the case id)")
    try:
        time = datetime.fromisoformat(h["ce_time"])
    except ValueError:
        raise EnvelopeError("ce_time is not an RFC 3339 time") from None
    if time.tzinfo is None:
        raise EnvelopeError("ce_time has no UTC offset")
    if h.get("content-type", CONTENT_TYPE).split(";")[0].strip() != CONTENT_TYPE:
        raise EnvelopeError("content-type must be application/json")
    try:
        data = orjson.loads(value or b"")  # strict: no NaN or infinities, no invalid UTF-8 or lone surrogates
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("value is not JSON (NaN and infinities are not JSON)") from None
    if b"\\u0000" in value and _NUL.search(value):  # PostgreSQL cannot store it: the event would fall out of the trace
        raise EnvelopeError("value holds a NUL character (\\u0000)")
    if not isinstance(data, dict):
        raise EnvelopeError("data must be a JSON object")
    actor = None
    if h.get("ce_actor") or h.get("ce_actorrole"):
        parts = [h.get("ce_actor", ""), h.get("ce_actorrole", "")] + ([h["ce_actorunit"]] if "ce_actorunit" in h else [])
        if not all(_ACTOR_TEXT.fullmatch(p) for p in parts):
            raise EnvelopeError("ce_actor and ce_actorrole (and ce_actorunit) must be 1-200 visible ASCII characters")
        actor = Actor(h["ce_actor"], h["ce_actorrole"], h.get("ce_actorunit"))
    return CloudEvent(
        id=h["ce_id"],
        source=h["ce_source"],
        type=h["ce_type"],
        subject=h["ce_subject"],
        time=time,
        data=data,
        traceparent=h.get("traceparent"),
        actor=actor,
    )
