"""Intake's rules (pure): the submission contract, case numbers, repeat reports, the plan for a group of
submissions, statuses, roles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake import domain
from shared.cloudevents import derive_id
from shared.contracts import CaseDuplicateReported, CaseReceived, Channel
from shared.contracts.submissions import CaseSubmission, id_number_is_valid
from shared.divisions import load_divisions

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VALID_ID = "11010519491231002X"  # the standard's own example


def _sub(**over) -> CaseSubmission:
    body = {"channel": "hotline", "description": "邻居家每天深夜装修噪音扰民", "location": {"division_code": "339901001001"},
            "reporter": {"name": "张三", "phone": "13800138000"}}
    body.update(over)
    return CaseSubmission.model_validate(body, context={"divisions": load_divisions()})


def test_case_number_uses_county_and_beijing_date():
    late_evening_utc = datetime(2026, 11, 23, 17, 30, tzinfo=UTC)  # already the 24th in Beijing
    prefix = domain.case_number_prefix("339901001001", late_evening_utc)
    assert prefix == "339901-20261124"
    assert domain.format_case_number(prefix, 42) == "339901-20261124-00042"


@pytest.mark.parametrize("phone", ["12345", "23800138000", "1380013800a"])
def test_bad_phone_numbers_are_refused(phone):
    with pytest.raises(ValidationError):
        _sub(reporter={"phone": phone})


def test_id_numbers_need_a_valid_check_digit():
    assert id_number_is_valid(VALID_ID)
    assert not id_number_is_valid("110105194912310021")
    assert _sub(parties=[{"id_number": VALID_ID.lower()}]).parties[0].id_number == VALID_ID
    with pytest.raises(ValidationError, match="check digit"):
        _sub(parties=[{"id_number": "110105194912310021"}])


def test_unknown_division_is_refused_with_the_directory():
    with pytest.raises(ValidationError, match="unknown administrative division"):
        _sub(location={"division_code": "110101001001"})


def test_every_invalid_field_is_reported_at_once():
    with pytest.raises(ValidationError) as exc:
        _sub(channel="fax", description="", occurred_at="2999-01-01T00:00:00+08:00",
             attachments=[{"name": "a.jpg", "media_type": "image/jpeg", "size": -1, "sha256": "xyz"}])
    fields = {".".join(map(str, e["loc"])) for e in exc.value.errors()}
    assert {"channel", "description", "occurred_at", "attachments.0.size", "attachments.0.sha256"} <= fields


def test_landline_is_accepted_and_title_defaults_to_the_description():
    s = _sub(reporter={"phone": "0571-87654321"})
    assert s.title == "邻居家每天深夜装修噪音扰民"


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs"):
        _sub(priority="high")


def test_received_event_carries_no_personal_data():
    s = _sub(parties=[{"name": "李四", "id_number": VALID_ID}], risk_flags=["minors", "violence", "minors"])
    ev = domain.received_event(uuid.uuid4(), "339901-20261123-00001", s, NOW)
    dumped = ev.model_dump_json()
    assert "张三" not in dumped and "13800138000" not in dumped and "李四" not in dumped and VALID_ID not in dumped
    assert ev.has_reporter_contact is True and ev.parties_count == 1
    assert ev.risk_flags == ["minors", "violence"]


def test_fingerprint_tells_retries_from_other_submissions():
    assert domain.fingerprint(_sub()) == domain.fingerprint(_sub())
    assert domain.fingerprint(_sub()) != domain.fingerprint(_sub(description="另一件事"))


def _open(text: str, *, division="339901001001", category=None, age=timedelta(hours=1)) -> domain.OpenCase:
    return domain.OpenCase(uuid.uuid4(), "339901-20261123-00001", division, category, text, NOW - age)


def test_repeat_report_is_found_by_place_category_text_and_time():
    policy = domain.DuplicatePolicy()
    same = _open("邻居家每天深夜装修噪音扰民 邻居家每天深夜装修噪音扰民")
    found = domain.find_duplicate(_sub(), NOW, [_open("路灯坏了"), same], policy)
    assert found is not None and found[0] is same and found[1] >= policy.threshold
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, division="339901001002")], policy) is None
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, category="civil.litigation")], policy) is None
    assert domain.find_duplicate(_sub(), NOW, [_open(same.text, age=timedelta(days=4))], policy) is None


def test_similarity_is_symmetric_and_bounded():
    a, b = "小区门口有人打架", "小区门口有人打架斗殴"
    assert domain.similarity(a, b) == domain.similarity(b, a)
    assert 0.5 < domain.similarity(a, b) < 1.0
    assert domain.similarity(a, a) == 1.0 and domain.similarity(a, "路灯") == 0.0


def test_roles_submit_through_their_channels_only():
    assert domain.may_submit("hotline", Channel.HOTLINE)
    assert not domain.may_submit("citizen", Channel.POLICE_REFERRAL)
    assert domain.may_submit("department", Channel.COURT_REFERRAL)
    assert not domain.may_submit("auditor", Channel.WINDOW)


# ---------------------------------------------------------------- a group of submissions, planned

NOISE = "邻居家每天深夜装修噪音扰民，已经持续一周"
LAMP = "小区东门路灯坏了好几天，晚上很黑"
LEAK = "楼上卫生间漏水渗到我家天花板"
XISHAN = "339902001001"  # another county: another numbering prefix


def _pending(description: str, *, key: str | None = None, division: str = "339901001001", by: str = "clerk-1",
             traceparent: str | None = None) -> domain.Pending:
    return domain.Pending(_sub(description=description, location={"division_code": division}), key, by, traceparent)


def _ids():
    n = iter(range(1, 1000))
    return lambda: uuid.UUID(int=next(n))


def _plan(group, *, earlier=None, open_cases=(), last=None):
    earlier = earlier or {}
    prefixes = domain.numbering_prefixes(group, earlier, NOW)
    last_numbers = {p: 0 for p in prefixes} | (last or {})
    return domain.plan_group(group, earlier, list(open_cases), last_numbers, NOW, domain.DuplicatePolicy(),
                             new_id=_ids())


def test_new_cases_are_numbered_on_from_each_prefix_counter_in_the_groups_order():
    plan = _plan([_pending(NOISE), _pending(LAMP, division=XISHAN), _pending(LEAK)],
                 last={"339901-20261123": 41, "339902-20261123": 7})
    assert [c.case_number for c in plan.new_cases] == [
        "339901-20261123-00042", "339902-20261123-00008", "339901-20261123-00043"]
    assert plan.last_numbers == {"339901-20261123": 43, "339902-20261123": 8}
    assert plan.repeats == []
    assert [(o.case_id, o.case_number, o.submission_id, o.duplicate) for o in plan.outcomes] == [
        (c.case_id, c.case_number, c.case_id, False) for c in plan.new_cases]


def test_a_report_repeating_one_earlier_in_the_same_group_is_linked_to_it_and_takes_no_number():
    plan = _plan([_pending(NOISE, traceparent="tp-1"), _pending(LAMP), _pending(NOISE, traceparent="tp-3")])
    first, lamp = plan.new_cases
    (repeat,) = plan.repeats
    assert (repeat.case_id, repeat.case_number, repeat.similarity) == (first.case_id, first.case_number, 1.0)
    assert repeat.submission_id not in {first.case_id, lamp.case_id}
    assert plan.last_numbers == {"339901-20261123": 2}
    assert plan.outcomes[2] == domain.Outcome(first.case_id, first.case_number, repeat.submission_id, duplicate=True)
    # case.received before the duplicate report that refers to it, each continuing its submission's trace
    assert [(type(a.fact), a.traceparent) for a in plan.announcements] == [
        (CaseReceived, "tp-1"), (CaseReceived, None), (CaseDuplicateReported, "tp-3")]
    assert [a.event_id for a in plan.announcements] == [
        derive_id(domain.SOURCE, first.case_id, "received"), derive_id(domain.SOURCE, lamp.case_id, "received"),
        derive_id(domain.SOURCE, repeat.submission_id, "duplicate")]
    dup = plan.announcements[2].fact
    assert (dup.case_id, dup.case_number, dup.submission_id, dup.received_at) == (
        first.case_id, first.case_number, repeat.submission_id, NOW)


def test_a_report_repeating_a_recent_open_case_is_linked_to_the_most_similar_one():
    close = _open(f"{NOISE}，物业也不管")  # similar enough (0.75), but less so than
    closer = domain.OpenCase(uuid.uuid4(), "339901-20261122-00007", "339901001001", None, NOISE,  # 0.95
                             NOW - timedelta(hours=3))
    plan = _plan([_pending(NOISE), _pending(NOISE, division=XISHAN)], open_cases=[_open(LAMP), close, closer])
    (repeat,) = plan.repeats
    assert (repeat.case_id, repeat.case_number) == (closer.case_id, "339901-20261122-00007")
    assert [c.case_number for c in plan.new_cases] == ["339902-20261123-00001"]  # same text, other division
    assert plan.outcomes[0].duplicate and plan.outcomes[0].case_id == closer.case_id


def test_a_retry_is_told_the_first_outcome_and_a_reused_key_is_a_conflict():
    sub = _pending(NOISE, key="key-00001")
    earlier = domain.EarlierSubmission(uuid.uuid4(), uuid.uuid4(), "339901-20261122-00003", True,
                                       domain.fingerprint(sub.submission), "clerk-1")
    plan = _plan([sub, _pending(LAMP, key="key-00001"), _pending(NOISE, key="key-00001", by="clerk-9"),
                  _pending(LEAK, key="key-00002"), _pending(LEAK, key="key-00002")],
                 earlier={"key-00001": earlier})
    retry, other_body, other_submitter, leak, leak_again = plan.outcomes
    assert retry == domain.Outcome(earlier.case_id, earlier.case_number, earlier.submission_id, True, replayed=True)
    assert other_body.conflict and other_submitter.conflict and not other_body.replayed
    assert [c.pending.idempotency_key for c in plan.new_cases] == ["key-00002"]  # one case for the key used twice
    assert not leak.replayed and leak_again == domain.Outcome(leak.case_id, leak.case_number, leak.submission_id,
                                                              replayed=True)
    assert domain.numbering_prefixes([sub], {"key-00001": earlier}, NOW) == []  # a retry numbers nothing


def test_numbering_prefixes_are_sorted_once_each_and_required_by_the_plan():
    group = [_pending(NOISE, division=XISHAN), _pending(LAMP), _pending(LEAK, division=XISHAN)]
    assert domain.numbering_prefixes(group, {}, NOW) == ["339901-20261123", "339902-20261123"]
    with pytest.raises(KeyError):  # numbering without the counter storage read would reuse numbers
        domain.plan_group(group, {}, [], {"339901-20261123": 0}, NOW, domain.DuplicatePolicy())




# ---------------------------------------------------------------- the repeat test, made cheap, decides alike


def _reference_bigrams(text: str) -> set[str]:
    """The rule as first written: 2-character strings of the text without whitespace and punctuation."""
    chars = [c for c in text if not c.isspace() and c not in "，。！？、,.!?;；:：()（）"]
    return {a + b for a, b in zip(chars, chars[1:])} or set(chars)


def _reference_duplicate(sub, received_at, open_cases, policy):
    text = _reference_bigrams(f"{sub.title} {sub.description}")
    best = None
    for case in open_cases:
        if case.division_code != sub.location.division_code or case.category != sub.category:
            continue
        if not (received_at - policy.window <= case.received_at <= received_at):
            continue
        other = _reference_bigrams(case.text)
        score = round(len(text & other) / len(text | other), 3) if text and other else 0.0
        if score >= policy.threshold and (best is None or score > best[1]):
            best = (case, score)
    return best


def test_bigrams_as_ints_are_the_bigrams_of_the_rule():
    import random
    import sys

    rng = random.Random(18)
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    alphabet = list("邻居家每天深夜装修噪音扰民路灯坏了ab12") + spaces + list("，。！？、,.!?;；:：()（）-")
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert domain._bigrams(text) == {(ord(b[0]) << 21 | ord(b[1])) if len(b) == 2 else ord(b)
                                         for b in _reference_bigrams(text)}, repr(text)


def test_the_repeat_found_is_the_one_the_rule_finds():
    import random

    rng = random.Random(18)
    words = ["邻居", "深夜", "装修", "噪音", "扰民", "路灯", "坏了", "漏水", "楼上", "，", " ", "已经", "一周"]
    for threshold in (0.3, 0.5, 0.6, 0.75):
        policy = domain.DuplicatePolicy(threshold=threshold)
        for _ in range(300):
            text = lambda: rng.choice(words[:9]) + "".join(rng.choice(words) for _ in range(rng.randint(0, 8)))  # noqa: E731
            said = text()
            # candidates: other matters, and the same matter told a little differently
            variants = [text(), said + rng.choice(words), rng.choice(words) + said, said[: max(2, len(said) - 2)]]
            cases = [_open(rng.choice(variants), category=rng.choice([None, "civil.noise"]),
                           age=timedelta(hours=rng.randint(0, 80))) for _ in range(rng.randint(0, 12))]
            sub = _sub(description=said, category=rng.choice([None, "civil.noise"]))
            assert domain.find_duplicate(sub, NOW, cases, policy) == _reference_duplicate(sub, NOW, cases, policy)
