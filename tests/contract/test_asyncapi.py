"""AsyncAPI documents: generated from the contracts, valid for the official parser, served by the services."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shared.contracts import asyncapi

VALIDATOR = Path(__file__).parent / "asyncapi"


def _validate(*files: Path) -> dict:
    proc = subprocess.run(["node", "validate.mjs", *map(str, files)], cwd=VALIDATOR, capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == (report["errors"] == 0)
    return report


def test_every_document_passes_the_official_parser(tmp_path):
    files = asyncapi.write_documents(tmp_path)
    assert len(files) == 9  # four services, five departments (the grid workers' app among them)
    report = _validate(*files)
    assert report["errors"] == 0, report["report"]


def test_the_validator_does_fail_on_a_broken_document(tmp_path):
    doc = asyncapi.department_document("police")
    doc["operations"]["receive_dispatch_police"]["channel"] = {"$ref": "#/channels/nowhere"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert _validate(bad)["errors"] > 0


@pytest.mark.parametrize("kind", ["police", "court", "petition", "mediation"])
def test_a_department_document_has_its_topics_and_every_message(kind):
    doc = asyncapi.department_document(kind)
    addresses = {c["address"] for c in doc["channels"].values()}
    court = {"court.mediation", "court.referrals"} if kind == "court" else set()
    assert addresses == {f"dispatch.{kind}", f"feedback.{kind}", f"rejections.{kind}", *court}
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert set(asyncapi.FEEDBACK_TYPES) <= names
    assert "org.onewindow.case.dispatched.v1" in names and "org.onewindow.feedback.rejected.v1" in names
    assert all(m["examples"] for m in doc["components"]["messages"].values())
    actions = {op["action"] for op in doc["operations"].values()}
    assert actions == {"send", "receive"}
