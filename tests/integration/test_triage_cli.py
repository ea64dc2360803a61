"""The router's model tools as a user runs them: `onewindow router train | activate | classify | eval`
in their own processes (reproducible training, corrections learned from events, activation log)."""

from __future__ import annotations

import json
import subprocess
import sys
from uuid import uuid4

from services.router import triage
from shared.contracts import CaseReceived, Location, TriageCorrected
from tests.unit.test_triage_model import T0, _rec, _small_corpus

def test_training_is_reproducible_across_processes(tmp_path):
    corpus = _small_corpus(tmp_path)
    hashes = []
    for run, seed in enumerate(("1", "2")):  # other hash seeds: nothing may depend on set or dict order
        out = tmp_path / f"out{run}"
        r = subprocess.run([sys.executable, "-m", "services.cli", "router", "train", "--corpus", str(corpus),
                            "--out", str(out)], capture_output=True, text=True, timeout=600,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        assert r.returncode == 0, r.stderr
        hashes.append(json.loads(r.stdout)["sha256"])
        assert len(list(out.glob("triage-*.joblib"))) == 1
    assert hashes[0] == hashes[1]


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli", "router", *args], input=stdin, capture_output=True,
                          text=True, timeout=600)


def test_train_from_events_adds_the_corrections_then_activation_is_recorded(tmp_path):
    corpus = _small_corpus(tmp_path)
    case_id = uuid4()
    received = CaseReceived(case_id=case_id, case_number="N9", channel="grid", title="t",
                            description="小区东门的路灯坏了一个月", location=Location(division_code="339901001001"),
                            received_at=T0)
    corrected = TriageCorrected(case_id=case_id, case_number="N9", correction="manual_dispatch", by="op-1",
                                corrected_category="petition.officials.inaction", catalogue_version="v")
    recording = tmp_path / "events.jsonl"
    recording.write_text(_rec("intake.cases", received, "/onewindow/intake").to_json() + "\n"
                         + _rec("router.decisions", corrected, "/onewindow/router").to_json() + "\n", encoding="utf-8")
    models = tmp_path / "models"
    r = _cli("train", "--corpus", str(corpus), "--out", str(models), "--from-events", "--from-file", str(recording))
    assert r.returncode == 0, r.stderr
    learned = [json.loads(line) for line in (corpus / "learned" / "corrections.jsonl").read_text().splitlines()]
    assert [(x["text"], x["category"]) for x in learned] == [("t 小区东门的路灯坏了一个月", "petition.officials.inaction")]
    version = json.loads(r.stdout)["version"]
    assert json.loads(r.stdout)["examples"] == 931  # 10 per item (and out of scope) and the correction

    r = _cli("activate", version, "--by", "张三", "--note", "what-if reviewed", "--directory", str(models))
    assert r.returncode == 0, r.stderr
    log = [json.loads(line) for line in (models / "activations.jsonl").read_text().splitlines()]
    assert [(x["version"], x["activated_by"], x["previous"]) for x in log] == [(version, "张三", None)]
    assert triage.load_active(models).version == version
    assert _cli("activate", "triage-000000000000", "--by", "x", "--note", "y",
                "--directory", str(models)).returncode == 2


def test_classify_reads_standard_input_and_writes_one_line_per_line():
    lines = "\n".join([json.dumps({"id": "a", "text": "老板欠了我三个月工资不给", "division_code": "339902002001"},
                                  ensure_ascii=False), "[]", ""])
    r = _cli("classify", stdin=lines)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == 2 and out[0]["id"] == "a" and out[0]["decision"] in ("dispatch", "manual") and "error" in out[1]


def test_eval_refuses_a_missing_file_and_a_file_without_catalogue_items(tmp_path):
    assert _cli("eval", "--heldout", str(tmp_path / "missing.jsonl")).returncode == 2
    only_outside = tmp_path / "outside.jsonl"
    only_outside.write_text(json.dumps({"text": "路灯坏了", "category": "out_of_scope"}, ensure_ascii=False) + "\n")
    r = _cli("eval", "--heldout", str(only_outside))
    assert r.returncode == 2 and "no examples" in r.stderr

