"""The learned triage: the live model's artifact, reproducible training, explanations, the loop that
learns from operators' corrections, batch classification and what-if over a candidate model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from services.replay import whatif
from services.router import cli, domain, triage
from shared.cloudevents import CloudEvent
from shared.contracts import CaseReceived, Location, TriageCorrected
from shared.divisions import load_divisions
from shared.messaging.log import LogRecord

CATALOGUE = domain.load_catalogue()
UNITS = domain.load_units()
MODEL = triage.load_active()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _route(text: str, flags=(), model=MODEL):
    return domain.route(domain.CaseFacts(text, None, "339901001001", list(flags), T0, channel="hotline"),
                        CATALOGUE, UNITS, model)


# -- the live model


def test_the_live_model_fits_the_catalogue_and_was_trained_on_the_corpus_in_the_repository():
    domain.check_model(MODEL, CATALOGUE)
    assert set(MODEL.classes) == set(CATALOGUE.kinds) | {triage.OUT_OF_SCOPE}
    examples = triage.read_examples(triage.training_files(), set(CATALOGUE.kinds))
    assert MODEL.manifest["corpus_sha256"] == triage.corpus_hash(examples), "retrain: `onewindow router train`"
    assert MODEL.manifest["catalogue_version"] == CATALOGUE.version


def test_held_out_text_is_never_trained_on():
    train = {triage.normalise(e.text) for e in triage.read_examples(triage.training_files(), set(CATALOGUE.kinds))}
    held = triage.read_examples(triage.heldout_files(), set(CATALOGUE.kinds))
    assert held and not [e.text for e in held if triage.normalise(e.text) in train]
    frozen = json.loads((triage.CORPUS / "heldout" / cli.FROZEN).read_text())
    assert frozen["files"] == cli.file_hashes(triage.heldout_files()), "the held-out set changed after it was frozen"


def test_a_tampered_artifact_is_refused(tmp_path):
    manifest = json.loads((triage.REFERENCE / f"{MODEL.version}.json").read_text())
    blob = bytearray((triage.REFERENCE / manifest["artifact"]).read_bytes())
    blob[-10] ^= 0xFF
    (tmp_path / manifest["artifact"]).write_bytes(bytes(blob))
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="sha256"):
        triage.TriageModel.load(tmp_path / "m.json")


def test_the_decision_names_the_model_its_features_and_probability():
    plan = _route("小区门口有人打架斗殴，有人受伤了")
    assert isinstance(plan, domain.Plan) and plan.lead.kind.value == "police"
    t = plan.triage
    assert t.model_version == MODEL.version and f"model:{MODEL.version}:{plan.category.code}" in plan.rule_ids
    assert t.features and all(isinstance(f, str) and f for f in t.features)
    assert 0 < t.probability <= t.confidence <= 1 and len(t.candidates) == 3


@pytest.mark.parametrize("text", [
    "邻居拿着菜刀在楼道里追着人砍，快来人",
    "楼上那个人扬言要跳楼，说讨不到工钱就不活了",
    "村里几十个人把镇政府大门堵了，拉着横幅",
])
def test_red_cases_from_the_real_model_always_have_police(text):
    plan = _route(text)
    assert isinstance(plan, domain.ManualQueue) or (
        plan.risk.value == "red" and "police" in {a.unit.kind.value for a in plan.assignments})


@pytest.mark.parametrize("text", ["路口的路灯坏了好几天，晚上黑漆漆的", "我们小区明天停水吗", "想表扬一下社区的王书记"])
def test_reports_for_other_departments_go_to_the_manual_queue(text):
    decision = _route(text)
    assert isinstance(decision, domain.ManualQueue) and "outside the catalogue" in decision.reason
    assert len(decision.candidates) == 3 and triage.OUT_OF_SCOPE not in [c.category for c in decision.candidates]


def test_a_model_that_is_never_sure_sends_everything_to_the_manual_queue_with_candidates():
    doubtful = MODEL.with_threshold(1.01)
    decision = _route("小区门口有人打架斗殴", model=doubtful)
    assert isinstance(decision, domain.ManualQueue) and len(decision.candidates) == 3
    assert decision.candidates[0].probability >= decision.candidates[1].probability


# -- training


def _small_corpus(tmp_path: Path) -> Path:
    """Ten examples per category from the real corpus (a fast, still realistic training run)."""
    seen: dict[str, int] = {}
    lines = []
    for e in triage.read_examples(triage.training_files(), set(CATALOGUE.kinds)):
        if seen.get(e.category, 0) < 10:
            seen[e.category] = seen.get(e.category, 0) + 1
            lines.append(json.dumps({"text": e.text, "category": e.category, "channel": e.channel}, ensure_ascii=False))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "small.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path




def test_threshold_is_the_lowest_within_the_confident_wrong_budget():
    import numpy as np

    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.5, 0.45])
    right = np.array([True, True, False, True, False, True])
    assert triage.choose_threshold(conf, right, budget=0.0) == 0.81
    assert triage.choose_threshold(conf, right, budget=1 / 6) == 0.51


# -- the loop that learns


def _rec(topic: str, data, source: str) -> LogRecord:
    ev = CloudEvent.of(data, source=source, event_id=str(uuid4()))
    return LogRecord(topic, 0, 0, 0, ev.key(), ev.value(), tuple(ev.headers()))


def test_operator_corrections_become_training_examples():
    case_a, case_b, case_c = uuid4(), uuid4(), uuid4()
    received = [CaseReceived(case_id=c, case_number=f"N{i}", channel="hotline", title="t",
                             description=f"{text} 电话13812345678", location=Location(division_code="339901001001"),
                             received_at=T0)
                for i, (c, text) in enumerate([(case_a, "楼上装修吵"), (case_b, "说好的补偿没给"), (case_c, "不是我们的事")])]
    corrections = [
        TriageCorrected(case_id=case_a, case_number="N0", correction="manual_dispatch", by="op-1",
                        corrected_category="dispute.neighbourhood.noise", catalogue_version="v"),
        TriageCorrected(case_id=case_b, case_number="N1", correction="reassignment", by="op-1",
                        predicted_category="dispute.labour.wage_arrears",
                        corrected_category="petition.land.compensation", catalogue_version="v"),
        TriageCorrected(case_id=case_c, case_number="N2", correction="return", by="police-339901001",
                        predicted_category="public_security.violence.fight", reason="不属于公安职责",
                        catalogue_version="v"),
    ]
    records = [_rec("intake.cases", r, "/onewindow/intake") for r in received]
    records += [_rec("router.decisions", c, "/onewindow/router") for c in corrections]
    examples, review = triage.examples_from_corrections(records)
    assert sorted((e.category, e.text) for e in examples) == [
        ("dispute.neighbourhood.noise", "t 楼上装修吵 电话#"), ("petition.land.compensation", "t 说好的补偿没给 电话#")]
    assert [(r["case_number"], r["correction"], r["reason"]) for r in review] == [("N2", "return", "不属于公安职责")]


# -- batch classification


def test_classify_answers_every_line_in_order_and_bad_lines_with_an_error():
    lines = [
        json.dumps({"id": 1, "text": "小区门口有人打架斗殴", "division_code": "339901001001"}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "x", "text": "", "division_code": "339901001001"}),
        json.dumps({"id": 3, "text": "想起诉", "division_code": "110101001001"}),
        json.dumps({"id": 4, "text": "随便", "division_code": "339901001001", "category": "no.such"}),
        json.dumps({"id": 5, "text": "随便", "division_code": "339901001001",
                    "category": "litigation.enforcement.apply", "risk_flags": ["elderly"]}),
        "",
        json.dumps({"id": 6, "text": "楼上漏水到我家天花板", "division_code": "339902003001"}, ensure_ascii=False),
    ]
    out = list(cli.classify_lines(lines, CATALOGUE, UNITS, MODEL, load_divisions()))
    assert [o.get("id") for o in out] == [1, None, "x", 3, 4, 5, 6]
    assert out[0]["decision"] == "dispatch" and out[0]["unit_kind"] == "police" and out[0]["lead_unit"]
    assert "error" in out[1] and out[1]["line"] == 2
    assert "text" in out[2]["error"] and "unknown division" in out[3]["error"] and "no.such" in out[4]["error"]
    assert {k: out[5][k] for k in ("decision", "unit_kind", "category", "confidence", "risk")} == {
        "decision": "dispatch", "unit_kind": "court", "category": "litigation.enforcement.apply", "confidence": 1.0,
        "risk": "yellow"} and out[5]["lead_unit"].startswith("court-")
    assert set(out[6]) >= {"id", "decision", "unit_kind", "category", "confidence", "risk", "lead_unit"}


# -- what-if over a candidate model


def test_what_if_over_a_candidate_model_reports_exactly_the_changed_cases():
    texts = ["小区门口有人打架斗殴", "楼上漏水到我家", "我要起诉他借钱不还", "低保被取消了想恢复", "孩子走丢了",
             "物业费又涨了", "老板三个月没发工资", "说不清楚的事情反正就是不舒服", "隔壁在吵"]
    cases = [CaseReceived(case_id=uuid4(), case_number=f"W{i:02}", channel="hotline", title=t[:4], description=t,
                          location=Location(division_code="339901001001"), received_at=T0)
             for i, t in enumerate(texts)]
    strict = MODEL.with_threshold(0.9, "strict")
    seen, changes = whatif.compare(cases, (CATALOGUE, UNITS, MODEL), (CATALOGUE, UNITS, strict))
    # independently: a case changes exactly when the live model dispatches it and its kind is below 0.9
    expected = set()
    for c, p in zip(cases, MODEL.predict([f"{c.title} {c.description}" for c in cases])):
        live = _route(f"{c.title} {c.description}")
        if isinstance(live, domain.Plan) and p.kind_probabilities[p.kind] < 0.9:
            expected.add(c.case_number)
    assert seen == len(texts)
    assert {c.case_number for c in changes} == expected
    assert all(c.after.manual and c.before.manual is None for c in changes)


def test_the_fast_path_scores_exactly_as_scikit_learn_does():
    import numpy as np

    texts = ["小区门口有人打架斗殴", "楼上漏水！！！", "想问下去法院立案要带啥材料", "", "abc 123", "低保被取消了想恢复"]
    kinds, items = MODEL.sklearn_scores(texts)
    for t, k, i in zip(texts, kinds, items):
        fk, fi, _, _ = MODEL.scores(t)
        assert np.allclose(fk, k, atol=1e-4) and np.allclose(fi, i, atol=1e-4), t


def test_every_item_has_at_least_40_examples_from_at_least_two_writers():
    by_item: dict[str, set] = {}
    counts: dict[str, int] = {}
    for e in triage.read_examples(triage.training_files(), set(CATALOGUE.kinds)):
        counts[e.category] = counts.get(e.category, 0) + 1
        by_item.setdefault(e.category, set()).add(e.source.split(":")[0])
    assert set(counts) == set(CATALOGUE.kinds) | {triage.OUT_OF_SCOPE}
    assert min(counts.values()) >= 40
    assert min(len(w) for item, w in by_item.items() if item != triage.OUT_OF_SCOPE) >= 2








# -- found in review


@pytest.mark.parametrize("text", ["楼上邻居半夜噪音，别人拿刀敲我门说要弄死我", "两人一言不合拿刀互砍"])
def test_common_words_before_a_red_phrase_are_not_denials(text):
    assert domain.grade_risk([], text, 0, CATALOGUE)[0].value == "red"
    plan = _route(text)
    assert isinstance(plan, domain.ManualQueue) or "police" in {a.unit.kind.value for a in plan.assignments}


@pytest.mark.parametrize("text", ["", "   ", "13812345678", "ABC1234567", "！！！"])
def test_a_report_with_nothing_the_model_knows_goes_to_the_manual_queue(text):
    decision = _route(text)
    assert isinstance(decision, domain.ManualQueue) and "no words" in decision.reason


def test_a_model_file_outside_its_folder_or_with_another_hash_is_never_unpickled(tmp_path):
    evil = tmp_path / "evil.bin"
    evil.write_bytes(b"not a pickle")
    import hashlib

    manifest = json.loads((triage.REFERENCE / f"{MODEL.version}.json").read_text())
    (tmp_path / "m.json").write_text(json.dumps(manifest | {"artifact": str(evil),
                                                            "sha256": hashlib.sha256(evil.read_bytes()).hexdigest()}))
    with pytest.raises(ValueError, match="not a model file name"):
        triage.TriageModel.load(tmp_path / "m.json")
    for name in (manifest["artifact"], f"{MODEL.version}.json"):
        (tmp_path / name).write_bytes((triage.REFERENCE / name).read_bytes())
    (tmp_path / "active.toml").write_text(f'version = "{MODEL.version}"\nsha256 = "{"0" * 64}"\n')
    with pytest.raises(ValueError, match="not the expected"):
        triage.load_active(tmp_path)
    (tmp_path / "active.toml").write_text('version = "../../etc/x"\nsha256 = "0"\n')
    with pytest.raises(ValueError, match="not a model version"):
        triage.load_active(tmp_path)
    with pytest.raises(ValueError, match="not a model version"):
        triage.activate("../triage-000000000000", "x", "y", "now", directory=tmp_path)


def test_a_two_class_classifier_scores_both_classes():
    from types import SimpleNamespace

    import numpy as np

    w, b = triage._weights(SimpleNamespace(coef_=np.array([[1.0, -2.0]]), intercept_=np.array([0.5])))
    assert w.tolist() == [[-1.0, 1.0], [2.0, -2.0]] and b.tolist() == [-0.5, 0.5]


