"""What-if routing over a recorded stream of received cases: a rule change produces exactly the
expected differences, grouped by the rule that made them; reports are deterministic; bad arguments
exit non-zero and write nothing. (Reads a JSON-lines recording: no broker needed.)"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.replay import whatif
from services.router import domain, triage
from shared.cloudevents import CloudEvent
from shared.contracts import CaseReceived
from shared.messaging.log import LogRecord

CATALOGUE = domain.REFERENCE / "catalogue.toml"
AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


def received(n: int, description: str, category: str | None = None, flags: list[str] | None = None) -> LogRecord:
    case = CaseReceived(case_id=uuid.UUID(int=n), case_number=f"339901-20261120-{n:05d}", channel="hotline",
                        title="市民来电", description=description, category=category,
                        location={"division_code": "339901001001"}, received_at=AT, risk_flags=flags or [])
    ev = CloudEvent.of(case, source="/onewindow/intake", event_id=str(uuid.UUID(int=1000 + n)), time=AT)
    return LogRecord("intake.cases", 0, n, 0, ev.key(), ev.value(), tuple(ev.headers()))


RECORDING = [
    received(1, "两人在广场打架", category="public_security.violence.fight"),  # unchanged
    received(2, "我的电动车被盗了", category="public_security.property_crime.vehicle_theft"),  # county level
    received(3, "家里东西丢了", category="public_security.property_crime.theft"),  # county level
    received(4, "楼下有人醉酒闹事", category="public_security.order.drunk_disorder"),  # yellow: 闹事 turns red
    received(5, "今天天气不错"),  # no category, no model: manual in both
    received(6, "邻里纠纷", category="public_security.violence.fight"),  # unchanged
]


def candidate_catalogue(tmp_path: Path) -> Path:
    text = CATALOGUE.read_text(encoding="utf-8")
    text = text.replace('version = "2026.12-catalogue.2"', 'version = "2026.12-whatif"', 1)
    theft = text.index('code = "property_crime"')
    level = text.index('level = "town"', theft)
    text = text[:level] + 'level = "county"' + text[level + len('level = "town"'):]
    text = text.replace('red_phrases = ["持刀",', 'red_phrases = ["闹事", "持刀",', 1)
    path = tmp_path / "candidate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_rule_change_gives_the_expected_differences_and_no_others(tmp_path):
    baseline = (domain.load_catalogue(), domain.load_units(), None)
    candidate = (domain.load_catalogue(candidate_catalogue(tmp_path)), baseline[1], None)
    cases, skipped = whatif.received_cases(RECORDING + [LogRecord("intake.cases", 0, 99, 0, b"x", b"{}", ())])
    assert len(cases) == 6 and skipped == 1
    seen, changes = whatif.compare(cases, baseline, candidate)
    assert seen == 6
    by_case = {c.case_number[-1]: c for c in changes}
    assert set(by_case) == {"2", "3", "4"}
    for n in "23":
        c = by_case[n]
        assert (c.before.level, c.after.level) == ("town", "county") and c.after.unit_kind == "police"
        assert "level" in c.fields and "unit_id" in c.fields and "risk_colour" not in c.fields
        assert c.cause.startswith("jurisdiction: jurisdiction:town:") and "jurisdiction:county:" in c.cause
    four = by_case["4"]
    assert (four.before.risk_colour, four.after.risk_colour) == ("yellow", "red")
    assert four.cause == "risk: risk:yellow:醉酒 → risk:red:闹事"
    assert [g for g, _ in whatif.groups(changes)][0].startswith("jurisdiction:")  # the two theft cases


def test_what_if_command_writes_deterministic_reports(tmp_path):
    recording = tmp_path / "received.jsonl"
    recording.write_text("".join(r.to_json() + "\n" for r in RECORDING), encoding="utf-8")
    candidate = candidate_catalogue(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.cli", "replay", "what-if", *args],
                              capture_output=True, text=True, timeout=120)

    reports = []
    for i in range(2):
        out = run("--catalogue", str(candidate), "--from-file", str(recording),
                  "--csv", str(tmp_path / f"r{i}.csv"), "--html", str(tmp_path / f"r{i}.html"))
        assert out.returncode == 0, out.stderr
        assert "6 cases, 3 change" in out.stdout and "jurisdiction" in out.stdout
        reports.append(((tmp_path / f"r{i}.csv").read_bytes(), (tmp_path / f"r{i}.html").read_bytes()))
    assert reports[0] == reports[1], "same inputs, same report"
    rows = list(csv.DictReader(io.StringIO(reports[0][0].decode())))
    assert [r["case_number"][-1] for r in rows] == ["2", "3", "4"]
    assert rows[2]["risk_colour_before"] == "yellow" and rows[2]["risk_colour_after"] == "red"
    page = reports[0][1].decode()
    assert "2026.12-catalogue.2+triage-" in page and "→ 2026.12-whatif+triage-" in page

    # the live model against itself as the candidate: nothing changes
    same = run("--model", str(triage.REFERENCE / f"{triage.load_active().version}.json"), "--from-file", str(recording))
    assert same.returncode == 0 and "6 cases, 0 change" in same.stdout, same.stderr

    # bad arguments: non-zero, a clear message, nothing written
    bad = [
        (["--from-file", str(tmp_path / "missing.jsonl"), "--catalogue", str(candidate)], "no such file"),
        (["--from-file", str(recording)], "candidate"),
        (["--from-file", str(recording), "--catalogue", str(tmp_path / "nope.toml")], "no such file"),
    ]
    broken = tmp_path / "broken.toml"
    broken.write_text("version = 3\n", encoding="utf-8")
    bad.append((["--from-file", str(recording), "--catalogue", str(broken)], "cannot load the candidate"))
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text('{"topic": "intake.cases"}\nnot json\n', encoding="utf-8")
    bad.append((["--from-file", str(garbage), "--catalogue", str(candidate)], "garbage.jsonl:2"))
    for args, message in bad:
        out = run(*args, "--csv", str(tmp_path / "bad.csv"))
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert not (tmp_path / "bad.csv").exists()
