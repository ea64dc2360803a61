"""The case submission contract: what a window, app or departmental system submits to intake.

Used by `POST /v1/cases` and by the `intake.submissions` topic alike. Division codes are checked
against the division directory when the caller passes it as validation context
(`{"divisions": DivisionDirectory}`, and grid ids against `{"grids": GridDirectory}`), so the
contract itself does no I/O.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.contracts.events import Channel, DivisionCode, WindowDisposition

MAX_DESCRIPTION = 5000
Name = Annotated[str, Field(min_length=1, max_length=50)]
# mainland mobile (11 digits starting 1[3-9]) or a landline with its area code
Phone = Annotated[str, Field(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_is_valid(value: str) -> bool:
    """GB 11643 resident ID number: 17 digits + check character (0-9 or X)."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    check = _ID_CHECK[sum(int(c) * w for c, w in zip(value[:17], _ID_WEIGHTS)) % 11]
    return value[17].upper() == check


class RiskFlag(StrEnum):
    """Risk signals a clerk or app marks (they raise priority in the router)."""

    VIOLENCE = "violence"
    WEAPONS = "weapons"
    MINORS = "minors"
    ELDERLY = "elderly"
    MENTAL_HEALTH = "mental_health"
    GROUP_INCIDENT = "group_incident"


class Person(BaseModel):
    """A reporter or party. Personal data: stays in intake's store, never in events or logs."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name | None = None
    phone: Phone | None = None
    id_number: Annotated[str, Field(min_length=18, max_length=18)] | None = None

    @field_validator("id_number")
    @classmethod
    def _id_checksum(cls, value: str | None) -> str | None:
        if value is not None and not id_number_is_valid(value):
            raise ValueError("not a valid resident ID number (GB 11643 check digit)")
        return value.upper() if value else value


class Coordinates(BaseModel):
    """WGS-84 position."""

    model_config = ConfigDict(extra="forbid")

    lat: Annotated[float, Field(ge=-90, le=90)]
    lng: Annotated[float, Field(ge=-180, le=180)]


class SubmittedLocation(BaseModel):
    """Where the matter is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    division_code: DivisionCode
    grid_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] | None = None
    address: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    coordinates: Coordinates | None = None

    @field_validator("division_code")
    @classmethod
    def _known_division(cls, value: str, info: ValidationInfo) -> str:
        divisions = (info.context or {}).get("divisions")
        if divisions is not None and divisions.get(value) is None:
            raise ValueError("unknown administrative division code")
        return value

    @model_validator(mode="after")
    def _known_grid(self, info: ValidationInfo) -> "SubmittedLocation":
        # a grid named must be one of the grid directory's (context {"grids": GridDirectory}), in
        # the division given: a free-text grid would count in no grid's figures, or in another's
        grids = (info.context or {}).get("grids")
        if grids is not None and self.grid_id is not None:
            grid = grids.get(self.grid_id)
            if grid is None:
                raise ValueError("unknown grid")
            if grid.division != self.division_code:
                raise ValueError(f"grid {self.grid_id} lies in {grid.division}, not in {self.division_code}")
        return self


class Attachment(BaseModel):
    """Metadata of a file kept elsewhere (no blobs on Kafka)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    media_type: Annotated[str, Field(pattern=r"^[a-z]+/[a-zA-Z0-9.+-]{1,100}$")]
    size: Annotated[int, Field(ge=0, le=200 * 1024 * 1024)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def unstorable(value: object, path: str = "(body)") -> str | None:
    """Where a JSON value holds what PostgreSQL and the trace cannot keep (a NUL character, NaN or an
    infinity), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, float):
        return path if not math.isfinite(value) else None
    if isinstance(value, dict):
        return next((w for k, v in value.items() if (w := unstorable(k, path) or unstorable(v, f"{path}.{k}"))), None)
    if isinstance(value, list):
        return next((w for i, v in enumerate(value) if (w := unstorable(v, f"{path}[{i}]"))), None)
    return None


SUBMISSION_TYPE = "org.onewindow.case.submission.v1"  # the CloudEvents type of a submission on Kafka


class CaseSubmission(BaseModel):
    """A request for help, as submitted through any channel."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    channel: Channel
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    description: Annotated[str, Field(min_length=1, max_length=MAX_DESCRIPTION)]
    category: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")] | None = None
    location: SubmittedLocation
    reporter: Person | None = None
    parties: Annotated[list[Person], Field(max_length=20)] = []
    people_involved: Annotated[int, Field(ge=0, le=100_000)] | None = None
    risk_flags: Annotated[list[RiskFlag], Field(max_length=len(RiskFlag))] = []
    occurred_at: datetime | None = None
    attachments: Annotated[list[Attachment], Field(max_length=20)] = []
    # 直接办结 / 不予受理 at the window: only staff taking the report over HTTP (a clerk or hotline agent)
    disposition: WindowDisposition | None = None

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: object) -> object:
        """NUL characters and NaN or infinite numbers cannot be stored or traced: refused here, at the edge."""
        if (where := unstorable(data)) is not None:
            raise ValueError(f"{where}: NUL characters and NaN or infinite numbers are not accepted")
        return data

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset")
        if value > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError("occurred_at is in the future")
        return value

    @model_validator(mode="after")
    def _defaults(self) -> "CaseSubmission":
        if not self.title:
            self.title = self.description[:30]
        self.risk_flags = sorted(set(self.risk_flags))
        return self
