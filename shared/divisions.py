"""The administrative division directory (city → county → town → village/community), as master data."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.events import Level

DIVISIONS_FILE = Path(__file__).parent / "reference" / "divisions.toml"


class Division(BaseModel):
    """One administrative division."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$")
    name: str
    level: Level


class DivisionDirectory(BaseModel):
    """Every division, versioned; each code's parent must be listed too."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    division: tuple[Division, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "DivisionDirectory":
        codes = {d.code for d in self.division}
        if len(codes) != len(self.division):
            raise ValueError("division codes must be unique")
        for d in self.division:
            parent = self.parent_code(d.code)
            if parent and parent not in codes:
                raise ValueError(f"division {d.code} has no parent {parent} in the directory")
        return self

    @staticmethod
    def parent_code(code: str) -> str | None:
        """The code of the division above (a county's parent is its city, 4 digits + '00')."""
        if len(code) == 12:
            return code[:9]
        if len(code) == 9:
            return code[:6]
        if len(code) == 6 and not code.endswith("00"):
            return code[:4] + "00"
        return None

    def get(self, code: str) -> Division | None:
        """The division with this code, if listed."""
        return self._by_code().get(code)

    def path(self, code: str) -> list[Division]:
        """The division and every division above it, lowest first."""
        out, current = [], code
        while current and (d := self.get(current)):
            out.append(d)
            current = self.parent_code(current)
        return out

    def _by_code(self) -> dict[str, Division]:
        cache = self.__dict__.get("_index")
        if cache is None:
            cache = {d.code: d for d in self.division}
            object.__setattr__(self, "_index", cache)
        return cache


@lru_cache
def load_divisions(path: Path = DIVISIONS_FILE) -> DivisionDirectory:
    """Read and validate the division directory (once per process)."""
    return DivisionDirectory.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
