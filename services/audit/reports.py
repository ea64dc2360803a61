"""研判 and reports as plain Python: the periods of Beijing time, the 百分制 assessment from the
command-centre figures (indicators and weights are data: reference/indicators.toml) with 落后预警,
the daily digest of a county (日研判) from facts read out of the trace, and both as HTML pages.

Nothing here reads a database or the clock: the storage module hands in the rows, so a past period
gives the same report whenever it is asked for. Rankings are the metrics API's own (`domain.ranking`)
so a report and `GET /v1/metrics` never disagree; the score is a second, weighted view beside them.
"""

from __future__ import annotations

import html
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.audit import domain

INDICATORS_FILE = Path(__file__).parent / "reference" / "indicators.toml"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991
P = "org.onewindow."
RISK_IDENTIFIED, RISK_CHANGED = P + "risk.identified.v1", P + "risk.changed.v1"
ReportKind = Literal["daily", "monthly", "quarterly"]
LEVELS = {"unit": "单位", "town": "镇街", "grid": "网格"}


# --- indicators and weights (data) -------------------------------------------------------------------


class Indicator(BaseModel):
    """One assessed indicator: a figure of the metrics API and its weight out of 100."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["handled_on_time_rate", "acknowledged_on_time_rate", "satisfaction_rate",
                 "mediation_success_rate", "returns", "escalations"]
    name: str
    kind: Literal["rate", "penalty"]
    weight: float = Field(gt=0, le=100)


class Assessment(BaseModel):
    """落后预警 threshold and the least work that is scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lagging_below: float = Field(ge=0, le=100)
    min_dispatches: int = Field(ge=1)


class DigestRules(BaseModel):
    """What 日研判 calls trending up and a repeat report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    baseline_days: int = Field(ge=1, le=90)
    rise_factor: float = Field(ge=1)
    min_count: int = Field(ge=1)
    repeat_reports_min: int = Field(ge=1)


class Indicators(BaseModel):
    """The whole assessment scheme, versioned; weights add up to 100."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    assessment: Assessment
    digest: DigestRules
    indicator: tuple[Indicator, ...]

    @model_validator(mode="after")
    def _hundred(self) -> "Indicators":
        if len({i.key for i in self.indicator}) != len(self.indicator):
            raise ValueError("each indicator once")
        if abs(sum(i.weight for i in self.indicator) - 100) > 1e-9:
            raise ValueError("indicator weights must add up to 100 (百分制)")
        return self


@lru_cache
def load_indicators(path: Path = INDICATORS_FILE) -> Indicators:
    """Read and validate the indicators (once per process)."""
    return Indicators.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))


# --- periods of Beijing time -------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A Beijing day, month or quarter as a half-open UTC range; `bucket` is the metrics API's period."""

    kind: ReportKind
    label: str  # 2026-04-01, 2026-04, 2026-Q2
    since: datetime
    until: datetime
    bucket: Literal["month", "quarter"]
    first_day: date


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), BEIJING).astimezone(UTC)


def period_of(kind: ReportKind, text: str) -> Period:
    """The period a report covers: daily `YYYY-MM-DD`, monthly `YYYY-MM`, quarterly `YYYY-Qn`
    (ValueError on anything else)."""
    text = text.strip()
    if kind == "daily" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        d = date.fromisoformat(text)
        return Period(kind, text, _midnight(d), _midnight(d + timedelta(days=1)), "month", d)
    if kind == "monthly" and (m := re.fullmatch(r"(\d{4})-(\d{2})", text)) and 1 <= int(m[2]) <= 12:
        y, mo = int(m[1]), int(m[2])
        first, nxt = date(y, mo, 1), date(y + mo // 12, mo % 12 + 1, 1)
        return Period(kind, text, _midnight(first), _midnight(nxt), "month", first)
    if kind == "quarterly" and (m := re.fullmatch(r"(\d{4})-?Q([1-4])", text, re.IGNORECASE)):
        y, q = int(m[1]), int(m[2])
        first = date(y, 3 * q - 2, 1)
        nxt = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
        return Period(kind, f"{y}-Q{q}", _midnight(first), _midnight(nxt), "quarter", first)
    formats = {"daily": "YYYY-MM-DD", "monthly": "YYYY-MM", "quarterly": "YYYY-Qn"}
    raise ValueError(f"a {kind} period is written {formats.get(kind, '?')}, not {text!r}")


def beijing_day(t: datetime) -> date:
    """The Beijing calendar day of a time."""
    return t.astimezone(BEIJING).date()


def previous_day(now: datetime) -> date:
    """The last whole Beijing day before `now` (what the daily job digests)."""
    return beijing_day(now) - timedelta(days=1)


# --- 百分制 assessment --------------------------------------------------------------------------------


def score(figure: dict[str, Any], scheme: Indicators) -> float | None:
    """A unit's (town's, grid's) score out of 100 from its figures; None below `min_dispatches` or when
    no indicator had anything due. Indicators without data are left out and the rest scaled to 100."""
    dispatches = figure.get("dispatches") or 0
    if dispatches < scheme.assessment.min_dispatches:
        return None
    earned = weights = 0.0
    for ind in scheme.indicator:
        value = figure.get(ind.key)
        if value is None:
            continue
        part = float(value) if ind.kind == "rate" else max(0.0, 1 - float(value) / dispatches)
        earned += ind.weight * min(1.0, max(0.0, part))
        weights += ind.weight
    return round(100 * earned / weights, 1) if weights else None


def assess(figures: list[dict[str, Any]], scheme: Indicators) -> list[dict[str, Any]]:
    """Each figure with its score and 落后预警 flag, in the metrics API's ranking order (ranked first,
    then those with nothing due, by key)."""
    order = {(r["period"], r["key"]): r["rank"] for r in domain.ranking(figures)}
    rows = []
    for f in figures:
        s = score(f, scheme)
        rows.append({**f, "rank": order.get((f["period"], f["key"])), "score": s,
                     "lagging": s is not None and s < scheme.assessment.lagging_below})
    return sorted(rows, key=lambda r: (r["period"], r["rank"] is None, r["rank"] or 0, r["key"] or ""))


@dataclass
class Report:
    """A monthly or quarterly report of a division: each level's assessed figures."""

    division: str
    division_name: str
    period: Period
    scheme: Indicators
    levels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # division codes' names, for the page

    def lagging(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (level, row) under the 落后预警 threshold."""
        return [(level, r) for level, rows in self.levels.items() for r in rows if r["lagging"]]


def report_json(r: Report) -> dict[str, Any]:
    """A report as data: per level its rows in ranking order (rank as `GET /v1/metrics` ranks them,
    score, 落后预警) and the period in Beijing time."""
    return {"division": r.division, "division_name": r.division_name, "kind": r.period.kind,
            "period": r.period.label, "since": r.period.since.isoformat(), "until": r.period.until.isoformat(),
            "indicators": r.scheme.version, "lagging_below": r.scheme.assessment.lagging_below,
            "levels": r.levels, "lagging": [{"level": level, "key": row["key"], "score": row["score"]}
                                            for level, row in r.lagging()]}


def report(division: str, division_name: str, period: Period, figures_by_level: dict[str, list[dict]],
           scheme: Indicators, names: dict[str, str] | None = None) -> Report:
    """A report from the metrics figures of each level (`domain.figures` of the metrics query)."""
    return Report(division, division_name, period, scheme,
                  {level: assess(figs, scheme) for level, figs in figures_by_level.items()}, names or {})


# --- 日研判: the daily digest of a county ------------------------------------------------------------


def _rising(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict] = {}
    for e in sorted(events, key=lambda e: e["at"]):
        d = e["data"]
        if e["type"] == RISK_CHANGED and _num(d.get("score")) > _num(d.get("previous_score")):
            latest[d.get("risk_id")] = e
    return list(latest.values())


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("-inf")


def risk_line(e: dict[str, Any], titles: dict[str, str | None] | None = None) -> dict[str, Any]:
    """A risk event as the digest lists it, titled by its own or its identification's title (the
    contract's title carries no personal data; masked anyway)."""
    d = e["data"]
    title = d.get("title") or (titles or {}).get(str(d.get("risk_id")))
    return {"risk_id": str(d.get("risk_id")), "division_code": d.get("division_code"),
            "title": domain.mask_text(str(title or "")) or None, "matter": d.get("matter"),
            "score": d.get("score"), "previous_score": d.get("previous_score"), "colour": d.get("colour"),
            "status": d.get("status"), "at": e["at"].isoformat()}


def trends(counts: Iterable[tuple[date, str | None, int]], day: date, rules: DigestRules) -> list[dict[str, Any]]:
    """What rose on `day` against the daily average of the `baseline_days` before it: (day, key, n)
    counts in, the keys at least `rise_factor` times their baseline and `min_count` strong out."""
    start = day - timedelta(days=rules.baseline_days)
    today: dict[str, int] = {}
    before: dict[str, int] = {}
    for d, key, n in counts:
        if key is None:
            continue
        if d == day:
            today[key] = today.get(key, 0) + n
        elif start <= d < day:
            before[key] = before.get(key, 0) + n
    out = []
    for key, n in today.items():
        baseline = before.get(key, 0) / rules.baseline_days
        if n >= rules.min_count and n >= rules.rise_factor * baseline:
            out.append({"key": key, "count": n, "baseline": round(baseline, 2)})
    return sorted(out, key=lambda t: (-t["count"], t["key"]))


def digest(county: str, county_name: str, day: date, facts: dict[str, list], rules: DigestRules) -> dict[str, Any]:
    """The county's 日研判 for a Beijing day from the facts storage read (`storage.digest_facts`):
    new risks (identified that day), rising ones (a change that day raised the score; the latest such
    change per risk, not those already new), categories and towns trending up, cases gone overdue or
    escalated that day, and matters reported again (counts per case number: who reported never
    leaves intake)."""
    risks = facts["risks"]
    new = [risk_line(e) for e in sorted(risks, key=lambda e: e["at"]) if e["type"] == RISK_IDENTIFIED]
    new_ids = {r["risk_id"] for r in new}
    rising = [risk_line(e, facts.get("titles")) for e in _rising(risks)
              if str(e["data"].get("risk_id")) not in new_ids]
    repeats = [{"case_number": r["case_number"], "today": r["today"], "window": r["window"]}
               for r in facts["repeats"] if r["today"] > 0 and r["window"] >= rules.repeat_reports_min]
    return {
        "county": county, "county_name": county_name, "day": day.isoformat(),
        "baseline_days": rules.baseline_days,
        "new_risks": new, "rising_risks": sorted(rising, key=lambda r: (-_num(r["score"]), r["risk_id"])),
        "categories_up": trends(facts["categories"], day, rules),
        "places_up": trends(facts["places"], day, rules),
        "overdue": sorted(facts["overdue"], key=lambda c: (c["case_number"] or "", c["unit_id"] or "")),
        "escalated": sorted(facts["escalated"], key=lambda c: (c["case_number"] or "", c["to_unit_id"] or "")),
        "repeat_reports": sorted(repeats, key=lambda r: (-r["window"], r["case_number"] or "")),
        "received": sum(n for d, _, n in facts["categories"] if d == day),
    }


# --- pages -------------------------------------------------------------------------------------------

_CSS = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", sans-serif; font-size: 10pt; color: #111; }
h1 { font-size: 16pt; margin: 0 0 4pt; } h2 { font-size: 12pt; margin: 14pt 0 4pt; border-bottom: 1px solid #999; }
.meta { color: #555; font-size: 9pt; }
table { border-collapse: collapse; width: 100%; margin: 4pt 0; }
th, td { border: 1px solid #bbb; padding: 2pt 4pt; text-align: left; } th { background: #eef1f5; }
td.n { text-align: right; } tr.lagging td { background: #fde2e1; }
.empty { color: #777; font-style: italic; }
.c-red { color: #c00; } .c-orange { color: #d66a00; } .c-yellow { color: #a08000; } .c-blue { color: #0055aa; }
"""


COLOURS = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "green": "绿"}
STATUSES = {"identified": "已识别", "assessed": "已评估", "guarded": "已包保", "resolving": "化解中",
            "closed": "已化解", "escalated": "已升级"}


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def _table(headers: list[str], rows: list[list[str]], empty: str, classes: list[str] | None = None) -> str:
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{(classes or [""] * len(rows))[i]}">' + "".join(row) + "</tr>"
                   for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _place(code: str | None, names: dict[str, str]) -> str | None:
    return f"{names[code]}（{code}）" if code in names else code


def _td(v: Any, numeric: bool = False) -> str:
    return f'<td class="n">{_e(v)}</td>' if numeric else f"<td>{_e(v)}</td>"


def digest_html(d: dict[str, Any]) -> str:
    """The daily digest as a page (every value escaped)."""
    names = d.get("names") or {}

    def risks(rows: list[dict], rising: bool) -> str:
        headers = ["风险", "地区", "事项", "评分", "颜色", "状态"] + (["原评分"] if rising else [])
        return _table(headers, [[_td(r["title"] or r["risk_id"]), _td(_place(r["division_code"], names)), _td(r["matter"]),
                                 _td(r["score"], True), f'<td class="c-{_e(r["colour"])}">{_e(COLOURS.get(r["colour"], r["colour"]))}</td>',
                                 _td(STATUSES.get(r["status"], r["status"]))] + ([_td(r["previous_score"], True)] if rising else [])
                                for r in rows], "无")

    def up(rows: list[dict], what: str) -> str:
        return _table([what, "当日", f"前{d['baseline_days']}日日均"],
                      [[_td(_place(t["key"], names) if what == "镇街" else t["key"]), _td(t["count"], True),
                        _td(t["baseline"], True)] for t in rows], "无")

    body = (
        f"<h1>日研判 · {_e(d['county_name'])}（{_e(d['county'])}）</h1>"
        f'<p class="meta">{_e(d["day"])}（北京时间） · 当日受理 {d["received"]} 件 · 新增风险 {len(d["new_risks"])} 项'
        f" · 风险升高 {len(d['rising_risks'])} 项 · 超期 {len(d['overdue'])} 件 · 升级 {len(d['escalated'])} 件</p>"
        f"<h2>新增风险</h2>{risks(d['new_risks'], False)}"
        f"<h2>风险升高</h2>{risks(d['rising_risks'], True)}"
        f"<h2>上升的事项类别</h2>{up(d['categories_up'], '类别')}"
        f"<h2>上升的镇街</h2>{up(d['places_up'], '镇街')}"
        "<h2>超期案件（当日亮红灯）</h2>"
        + _table(["案件编号", "承办单位", "时限"], [[_td(c["case_number"]), _td(c["unit_id"]), _td(c["clock"])]
                                           for c in d["overdue"]], "无")
        + "<h2>升级案件</h2>"
        + _table(["案件编号", "原单位", "升级至"], [[_td(c["case_number"]), _td(c["from_unit_id"]),
                                            _td(c["to_unit_id"])] for c in d["escalated"]], "无")
        + "<h2>重复反映</h2>"
        + _table(["案件编号", "当日次数", "窗口内次数"], [[_td(r["case_number"]), _td(r["today"], True),
                                                 _td(r["window"], True)] for r in d["repeat_reports"]], "无")
    )
    return _page(f"日研判 {d['county']} {d['day']}", body)


def report_html(r: Report) -> str:
    """A monthly or quarterly report as a page: per level the ranking (the metrics API's), the
    indicators and the score out of 100, and the 落后预警 list."""
    title = {"monthly": "月度进度报告", "quarterly": "季度考核排名"}.get(r.period.kind, "报告")
    weights = "，".join(f"{i.name} {i.weight:g}" for i in r.scheme.indicator)
    body = (f"<h1>{title} · {_e(r.division_name)}（{_e(r.division)}）</h1>"
            f'<p class="meta">{_e(r.period.label)}（北京时间 {r.period.since.astimezone(BEIJING):%Y-%m-%d} 至 '
            f"{(r.period.until.astimezone(BEIJING) - timedelta(days=1)):%Y-%m-%d}） · 百分制：{_e(weights)}"
            f" · 低于 {r.scheme.assessment.lagging_below:g} 分落后预警 · 指标版本 {_e(r.scheme.version)}</p>")
    lagging = r.lagging()
    body += "<h2>落后预警</h2>" + _table(
        ["层级", "名称", "得分"], [[_td(LEVELS.get(level, level)), _td(_place(row["key"], r.names)), _td(row["score"], True)]
                               for level, row in lagging], "无")
    for level, rows in r.levels.items():
        body += f"<h2>{_e(LEVELS.get(level, level))}排名</h2>" + _table(
            ["名次", LEVELS.get(level, level), "派单", "按时签收率", "及时处置率", "满意率", "调解成功率", "退单", "升级", "得分"],
            [[_td(x["rank"] if x["rank"] is not None else "—", True), _td(_place(x["key"], r.names) or "（未标注）"),
              _td(x["dispatches"], True), _td(_pct(x["acknowledged_on_time_rate"]), True),
              _td(_pct(x["handled_on_time_rate"]), True), _td(_pct(x["satisfaction_rate"]), True),
              _td(_pct(x["mediation_success_rate"]), True), _td(x["returns"], True), _td(x["escalations"], True),
              _td("—" if x["score"] is None else f"{x['score']:.1f}", True)] for x in rows],
            "本期无派单", ["lagging" if x["lagging"] else "" for x in rows])
    return _page(f"{title} {r.division} {r.period.label}", body)


def pdf(page: str) -> bytes:
    """A page as PDF (WeasyPrint: pango lays it out, Noto CJK sets the Chinese). The page needs nothing
    from outside, so the printer may fetch nothing: no file, no URL, whatever the page says."""
    from weasyprint import HTML  # imported here: loading pango is for the act of printing only
    from weasyprint.urls import URLFetcher

    return HTML(string=page, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf()
