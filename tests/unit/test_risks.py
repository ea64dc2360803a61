"""The risk register's pure logic: weights as data, the five colours, the lifecycle table and the
clustering of related cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.mediation import risks
from shared.contracts.events import RiskGrade, RiskStatus

W = risks.load_weights()
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _signal(n: int, *, days: float = 0, matter: str | None = "neighbour_dispute", division: str = "339901001001",
            people: int | None = None, flags: frozenset[str] = frozenset(), repeats: int = 0) -> risks.Signal:
    return risks.Signal(f"00000000-0000-0000-0000-{n:012d}", division, matter, T0 + timedelta(days=days),
                        people, flags, repeats)


def _expected(factors: dict[str, float]) -> float:
    return round(sum(f.weight * min(factors[k] / f.full, 1) for k, f in W.factor.items()), 1)


def test_the_score_follows_the_weights_and_the_colour_its_grade():
    signals = [_signal(1), _signal(2, flags=frozenset({"group_incident"})), _signal(3, people=50, repeats=2),
               _signal(4, flags=frozenset({"weapons", "minors"}))]
    factors = risks.factors_of(signals, W, assessment=0.5)
    assert factors == {"cases": 4, "repeat_reports": 2, "group_signs": 2, "violence": 1, "vulnerable": 1,
                       "assessment": 0.5}
    score = risks.score_of(factors, W)
    assert score == _expected(factors) == 20 + 7.5 + 25 + 15 + 2.5 + 5
    assert risks.colour_of(score, W) is RiskGrade.ORANGE  # 75: orange from 60, red from 80
    assert [risks.colour_of(s, W) for s in (0, 19.9, 20, 40, 60, 79.9, 80, 100)] == [
        RiskGrade.GREEN, RiskGrade.GREEN, RiskGrade.BLUE, RiskGrade.YELLOW, RiskGrade.ORANGE, RiskGrade.ORANGE,
        RiskGrade.RED, RiskGrade.RED]


def test_other_weights_give_another_score(tmp_path):
    text = risks.WEIGHTS_FILE.read_text(encoding="utf-8")
    changed = text.replace("weight = 30\nfull = 6", "weight = 40\nfull = 3").replace("weight = 25\nfull = 2",
                                                                                     "weight = 15\nfull = 2")
    (tmp_path / "w.toml").write_text(changed, encoding="utf-8")
    other = risks.load_weights(tmp_path / "w.toml")
    factors = risks.factors_of([_signal(1), _signal(2), _signal(3)], other)
    assert risks.score_of(factors, other) == 40 and risks.score_of(factors, W) == 15


@pytest.mark.parametrize("edit, message", [
    (("weight = 30", "weight = 31"), "add up to 100"),
    (('colour = "blue"', 'colour = "red"'), "five colours"),
    (("from = 40", "from = 90"), "highest score down"),
    (("[factor.assessment]", "[factor.mood]"), "factors must be"),
])
def test_inconsistent_weights_are_refused(tmp_path, edit, message):
    (tmp_path / "w.toml").write_text(risks.WEIGHTS_FILE.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        risks.load_weights(tmp_path / "w.toml")


def _risk() -> tuple[risks.Risk, list[risks.Signal]]:
    signals = [_signal(1), _signal(2), _signal(3)]
    return risks.identify("r-1", signals, W, T0, origin="operator", title="t", division_code="339901001001",
                          actor="operator-1"), signals


def test_the_lifecycle_runs_identified_assessed_guarded_resolving_closed():
    risk, signals = _risk()
    before = risk.score
    r = risks.act(risk, "assess", T0, W, signals, actor="operator-1", assessment=1.0)
    assert (r["from"], r["to"], r["previous_score"], r["score"]) == ("identified", "assessed", before, before + 10)
    risks.act(risk, "guard", T0, W, signals, actor="operator-1", guardian={"leader": "镇党委副书记", "unit_id": "town-339901001"})
    assert risk.status is RiskStatus.GUARDED and risk.guardian == {"leader": "镇党委副书记", "unit_id": "town-339901001"}
    risks.act(risk, "care", T0, W, signals, actor="operator-1", care={"household": "hh-0042", "colour": "red",
                                                                      "level": "town"})
    risks.act(risk, "resolve", T0, W, signals, actor="operator-1")
    r = risks.act(risk, "close", T0, W, signals, actor="operator-1", reason="协议履行完毕")
    assert risk.status is RiskStatus.CLOSED and r["reason"] == "协议履行完毕"
    assert [h["to"] for h in risk.history] == ["identified", "assessed", "guarded", "guarded", "resolving", "closed"]
    assert risk.care == [{"household": "hh-0042", "colour": "red", "level": "town"}]


@pytest.mark.parametrize("path, refused", [
    ((), "guard"),  # no 包保 before an assessment
    ((), "close"),
    ((), "escalate"),
    (("assess",), "resolve"),  # resolving needs a guardian
    (("assess", "escalate"), "assess"),  # escalated is finished here
    (("assess", "guard", "resolve", "close"), "care"),
])
def test_refused_transitions(path, refused):
    risk, signals = _risk()
    kwargs = {"assessment": 0.2, "guardian": {"leader": "a", "unit_id": "u"}, "reason": "r",
              "care": {"household": "h", "colour": "red", "level": "town"}}
    for a in path:
        risks.act(risk, a, T0, W, signals, actor="o", **kwargs)
    status = risk.status
    with pytest.raises(risks.RefusedTransition):
        risks.act(risk, refused, T0, W, signals, actor="o", **kwargs)
    assert risk.status is status and len(risk.history) == 1 + len(path)


def test_acts_without_what_they_need_are_refused():
    risk, signals = _risk()
    with pytest.raises(ValueError):
        risks.act(risk, "assess", T0, W, signals, actor="o", assessment=1.5)
    risks.act(risk, "assess", T0, W, signals, actor="o", assessment=0)
    with pytest.raises(ValueError):
        risks.act(risk, "guard", T0, W, signals, actor="o", guardian={"leader": "", "unit_id": "u"})
    with pytest.raises(ValueError):
        risks.act(risk, "escalate", T0, W, signals, actor="o")
    assert risk.status is RiskStatus.ASSESSED


def test_three_related_cases_within_the_window_open_one_risk():
    known: list[risks.Signal] = []
    taken: set[str] = set()
    opened = []
    for n, days in ((1, 0), (2, 3), (3, 9)):
        s = _signal(n, days=days, people=30 if n == 3 else None)
        known.append(s)
        opened += risks.cluster([s], known, [], taken, W, T0).identified
    assert len(opened) == 1
    risk = opened[0]
    assert risk.origin == "cluster" and risk.matter == "neighbour_dispute" and len(risk.case_ids) == 3
    factors = {"cases": 3, "repeat_reports": 0, "group_signs": 1, "violence": 0, "vulnerable": 0, "assessment": 0}
    assert risk.score == _expected(factors) == 27.5 and risk.colour is RiskGrade.BLUE
    # a fourth joins the open risk, and a repeat report rescores it
    s4 = _signal(4, days=10)
    known.append(s4)
    out = risks.cluster([s4], known, [risk], taken, W, T0)
    assert not out.identified and out.changed[0][1]["previous_score"] == 27.5 and len(risk.case_ids) == 4
    late = _signal(5, days=30)  # beyond the window of the risk's latest case (day 10)
    known.append(late)
    assert not risks.cluster([late], known, [risk], taken, W, T0).changed and late.case_id not in risk.case_ids
    known[0].repeats = 1
    out = risks.cluster([known[0]], known, [risk], taken, W, T0)
    assert out.changed and risk.factors["repeat_reports"] == 1


def test_cases_apart_in_time_place_or_matter_do_not_cluster():
    taken: set[str] = set()
    spread = [_signal(1), _signal(2, days=8), _signal(3, days=15)]  # 1 and 3 are 15 days apart
    assert not risks.cluster(spread[-1:], spread, [], taken, W, T0).identified
    places = [_signal(1), _signal(2), _signal(3, division="339901001002")]
    assert not risks.cluster(places, places, [], taken, W, T0).identified
    unknown = [_signal(n, matter=None) for n in (1, 2, 3)]
    assert not risks.cluster(unknown, unknown, [], taken, W, T0).identified
    # the same arrival replayed opens the same risk id
    same = [_signal(1), _signal(2), _signal(3)]
    a = risks.cluster(same, same, [], set(), W, T0).identified[0]
    b = risks.cluster(same, same, [], set(), W, T0).identified[0]
    assert a.risk_id == b.risk_id
