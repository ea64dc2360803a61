"""The short fault drills CI runs (`onewindow drill` runs them all, longer and under load, see
docs/drills.md): each on its own stack, each must account for every case offered with nothing lost or
duplicated."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

SHORT = ["kill-intake", "pause-router", "restart-postgres", "poison", "restart-broker"]


def test_short_drills_lose_and_duplicate_nothing(tmp_path):
    out = tmp_path / "drills.json"
    args = [a for name in SHORT for a in ("--drill", name)]
    run = subprocess.run([sys.executable, "-m", "services.cli", "drill", *args, "--cases", "20", "--results", str(out)],
                         capture_output=True, text=True, timeout=1200)
    results = json.loads(out.read_text())
    assert [r["drill"] for r in results] == SHORT, run.stderr[-2000:]
    for r in results:
        assert (r["offered"], r["accepted"], r["recorded"], r["lost"], r["duplicated"]) == (20, 20, 20, 0, 0), r
        assert r["fault_window"][0] < r["load_seconds"], r  # the fault struck while cases were still offered
    poison = results[SHORT.index("poison")]
    # every poison record set aside by each consumer of its topic (audit's own dead-letter topic aside)
    assert poison["dead_letters"] >= 4 * 14, poison
    assert run.returncode == 0, run.stdout[-3000:]
    assert "fault drills" in run.stdout


def test_postgres_outage_under_load_with_batches_over_several_partitions(tmp_path):
    """The short form of the loaded drills: 200 cases at 50/s, PostgreSQL stopped while they come; the
    records the router and audit keep reading again while it is down span several partitions, and so do
    the batches they apply once it is back."""
    out = tmp_path / "loaded.json"
    run = subprocess.run([sys.executable, "-m", "services.cli", "drill", "--drill", "restart-postgres", "--cases", "200",
                          "--rate", "50", "--results", str(out)], capture_output=True, text=True, timeout=600)
    [r] = json.loads(out.read_text())
    assert (r["offered"], r["accepted"], r["recorded"], r["lost"], r["duplicated"]) == (200, 200, 200, 0, 0), r
    assert r["rate"] == 50 and r["offered_per_s"] >= 45, r  # the offered rate is real
    began, ended = r["fault_window"]
    assert 0 < began < r["load_seconds"] and r["offered_during_fault"] > 0, r  # it struck mid-load
    assert r["requests"] > r["offered"], "offers refused during the outage were made again"
    assert r["recovery_seconds"] is not None and r["recovery_seconds"] < 60, r
    held = r["observed"]["uncommitted_during_outage"]
    for group in ("router", "audit"):
        # while PostgreSQL was down, what each group kept reading again spanned several partitions
        assert held[group]["partitions"] >= 2, held
        assert r["batches"][group]["several_partitions"] > 0, r["batches"]
    # once it was back, the records were applied in batches over several partitions (the first batch
    # read after the outage may hold a part only: a fetch answer can come in before the others)
    assert max(g["first_after_strike"]["partitions"] for g in r["batches"].values() if g["first_after_strike"]) >= 2
    assert run.returncode == 0, run.stdout[-3000:]
    assert "offered/s" in run.stdout and "recovery s" in run.stdout


def test_unknown_drill_is_refused():
    run = subprocess.run([sys.executable, "-m", "services.cli", "drill", "--drill", "unplug-the-moon"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown drill" in run.stderr


def test_bench_prints_the_system_beside_its_limits(tmp_path):
    out = tmp_path / "e2e.json"
    run = subprocess.run([sys.executable, "-m", "services.cli", "bench", "--seconds", "2", "--rate", "20",
                          "--relay-records", "1000", "--results", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(out.read_text())
    fixed, sat = r["phases"]["fixed"], r["phases"]["saturation"]
    assert fixed["accepted"] > 0 and sat["accepted"] > 0 and sat["errors"] == 0
    assert fixed["intake_to_dispatch"]["arrived"] == fixed["accepted"], "every accepted case was dispatched"
    assert sat["intake_to_audit"]["arrived"] == sat["accepted"], "every accepted case reached audit"
    assert r["limits"]["raw_relay_4_hops"]["delivered"] == 1000 and r["limits"]["bare_asgi"]["per_s"] > 0
    assert set(r["peak_rss_mib"]) == {"intake", "router", "mediation", "audit"}
    for phase in (fixed, sat):  # what a case costs each process, and the four services summed
        cost = phase["cpu_ms_per_case"]
        assert {"intake", "router", "mediation", "audit", "broker", "postgres"} <= set(cost), cost
        assert all(cost[p] > 0 for p in ("intake", "router", "audit", "broker", "postgres")), cost
        assert cost["services_total"] == pytest.approx(
            sum(cost[p] for p in ("intake", "router", "mediation", "audit")), abs=0.01)
    assert "CPU ms per case" in run.stdout
    assert "ratio end to end / raw relay" in run.stdout
