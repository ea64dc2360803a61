"""The operator console in a real headless browser (Debian's chromium driven by Playwright) against the
real services: an operator signs in, dispatches from the manual queue's candidates, records an
unsatisfied callback and sees the rework, watches a town turn overdue on the map, exports a quarterly
ranking equal to the metrics API, and an operator of one county sees nothing of another. Every page
is photographed into docs/console/ and each picture checked to hold something."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import struct
import time
import tomllib
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import OPERATOR, TOKENS, auth, unique
from tests.e2e.conftest import OIDC_AUTHORIZE, OIDC_TOKEN
from tests.e2e.test_router_api import _wait_in_queue

pytestmark = pytest.mark.e2e
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parents[2] / "docs" / "console"
VIEWPORT = {"width": 1366, "height": 768}  # the command centre's screens
UNIT_NAMES = {u["id"]: u["name"] for u in tomllib.loads(
    (Path(__file__).parents[2] / "services/router/reference/units.toml").read_text(encoding="utf-8"))["unit"]}


def _off_the_loop(fn, *args):
    """Run a helper that uses asyncio.run outside Playwright's own event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _distinct_byte_values(png: bytes) -> int:
    """How many different byte values the decompressed image data holds: a blank box has a handful,
    anti-aliased text has dozens."""
    pos, data = 8, b""
    while pos < len(png):
        length = struct.unpack(">I", png[pos:pos + 4])[0]
        if png[pos + 4:pos + 8] == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(data)))


def _shot(page, name: str, locator=None) -> None:
    """A screenshot of the page (or one part) into docs/console/, checked not to be blank."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    png = (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": False}))
    assert len(png) > 10_000 and _distinct_byte_values(png) > 40, f"{name}.png is blank"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _signed_in(browser, stack, token_name: str = "operator-token-0001"):
    """A page of the console signed in with the development token form (on in the test stack)."""
    page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    _watch(page)
    page.goto(f"{stack.url('audit')}/v1/console")
    page.fill("#token", TOKENS[token_name])
    page.click("#connect")
    expect(page.locator("#status")).to_have_text("实时", timeout=15_000)
    return page


def _watch(page) -> None:
    """Collect what must never happen on the page: uncaught script errors and blocked loads (CSP)."""
    page.broken = []
    page.on("pageerror", lambda e: page.broken.append(str(e)))
    page.on("console", lambda m: page.broken.append(m.text) if "Content Security Policy" in m.text else None)


def _clean(page) -> None:
    """No script errors or CSP blocks, and the view fits the 1366-pixel screen (no sideways scrolling)."""
    assert not page.broken, page.broken
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


def _confirm(page) -> None:
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-ok")


def _router(stack, case_id: str) -> dict:
    return httpx.get(f"{stack.url('router')}/v1/cases/{case_id}", headers=OPERATOR, timeout=10).json()


def _wait_for(stack, case_id: str, event_type: str, count: int = 1, timeout: float = 30.0) -> None:
    """Until the case's timeline holds `count` events of a type (the simulator may already be past it)."""
    deadline = time.monotonic() + timeout
    while sum(e["type"] == event_type for e in stack.timeline(case_id)) < count:
        assert time.monotonic() < deadline, f"{case_id}: no {count} × {event_type}"
        time.sleep(0.2)


def _submit(stack, text: str, division: str) -> dict:
    r = stack.submit({"channel": "hotline", "description": unique(text), "location": {"division_code": division}})
    assert r.status_code in (200, 201, 202), r.text
    return r.json()


def test_sign_in_with_the_identity_provider_code_and_pkce(browser, stack):
    """Authorization code + PKCE: the console sends a S256 challenge, proves the verifier at the token
    endpoint, and keeps the token out of the address bar. The identity provider is played here."""
    seen: dict = {}
    page = browser.new_page(viewport=VIEWPORT)
    _watch(page)

    def authorize(route):
        q = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = q
        route.fulfill(status=302, headers={"Location": f"{q['redirect_uri']}?code=one-time-code&state={q['state']}"})

    def token(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen["token"] = form
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=").decode()
        ok = form["code"] == "one-time-code" and challenge == seen["authorize"]["code_challenge"]
        route.fulfill(status=200 if ok else 400, content_type="application/json",
                      headers={"Access-Control-Allow-Origin": stack.url("audit")},
                      body=json.dumps({"access_token": TOKENS["operator-token-0001"], "token_type": "Bearer"}
                                      if ok else {"error": "invalid_grant"}))

    page.route(lambda url: url.startswith(OIDC_AUTHORIZE), authorize)
    page.route(lambda url: url == OIDC_TOKEN, token)
    page.goto(f"{stack.url('audit')}/v1/console")
    _shot(page, "signin")
    page.click("#oidc")
    expect(page.locator("#status")).to_have_text("实时", timeout=15_000)
    expect(page.locator("#who")).to_contain_text("operator-1")
    a = seen["authorize"]
    assert (a["response_type"], a["client_id"], a["code_challenge_method"]) == ("code", "onewindow-console", "S256")
    assert seen["token"]["grant_type"] == "authorization_code" and seen["token"]["client_id"] == "onewindow-console"
    assert "code=" not in page.url and "one-time-code" not in page.url
    _clean(page)
    page.close()


def test_manual_queue_dispatch_from_the_candidates_and_a_refusal_shown_plainly(browser, stack):
    case = _submit(stack, "小区门口的路灯坏了一个多星期了，晚上走路看不见", "339902002003")
    stale = _submit(stack, "小区门口的路灯坏了一个多星期了，晚上走路看不见", "339902002003")
    for c in (case, stale):
        _wait_in_queue(stack, "manual", c["case_id"])
    page = _signed_in(browser, stack)
    try:
        page.locator("#queue tr", has_text=case["case_number"]).click()
        candidates = page.locator(".cands button[data-act=dispatch]")
        expect(candidates.first).to_be_visible(timeout=10_000)
        chosen = candidates.first.get_attribute("data-category")
        expect(page.locator("#work")).to_contain_text("%")  # each candidate with its probability
        _shot(page, "queues")
        candidates.first.click()
        _confirm(page)
        expect(page.locator(".done")).to_be_visible(timeout=10_000)
        routed = _router(stack, case["case_id"])  # the simulated unit may have accepted it already
        assert routed["status"] != "manual_triage" and routed["category"] == chosen, routed
        assert routed["dispatches"][-1]["unit_id"].split("-")[1].startswith("3399")
        expect(page.locator("#queue tr", has_text=case["case_number"])).to_have_count(0, timeout=10_000)

        # someone else finishes the other case while it is open here: the act is refused, and said so
        page.locator("#queue tr", has_text=stale["case_number"]).click()
        expect(page.locator(".cands button[data-act=dispatch]").first).to_be_visible(timeout=10_000)
        r = httpx.post(f"{stack.url('router')}/v1/cases/{stale['case_id']}/close", headers=OPERATOR, timeout=10,
                       json={"code": "answered", "note": "已电话答复"})
        assert r.status_code == 200, r.text
        page.locator(".cands button[data-act=dispatch]").first.click()
        _confirm(page)
        problem = page.locator("#problem")
        expect(problem).to_be_visible(timeout=10_000)
        expect(problem).to_contain_text("409")
        expect(problem).to_contain_text("closed")
        _clean(page)
    finally:
        page.close()


def test_unsatisfied_callback_and_the_rework_on_the_case_page(browser, stack):
    # in 西山县 城关镇: other tests count on 东湖区's callbacks being satisfied
    case = _submit(stack, "商场门口有人打架，有人受伤", "339902001001")
    _wait_in_queue(stack, "callback", case["case_id"], timeout=60)
    page = _signed_in(browser, stack)
    try:
        page.click("#queue-tabs button[data-queue=callback]")
        page.locator("#queue tr", has_text=case["case_number"]).click()
        page.locator("button[data-act=callback][data-outcome=unsatisfied]").click()
        _confirm(page)
        expect(page.locator(".done")).to_be_visible(timeout=10_000)
        _wait_for(stack, case["case_id"], "org.onewindow.case.dispatched.v1", count=2)  # the rework
        page.click("#nav button[data-view=case]")
        page.fill("#number", case["case_number"])
        page.click("#search")
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("callback_recorded", timeout=10_000)
        expect(timeline).to_contain_text("不满意")
        expect(timeline).to_contain_text("operator-1 (operator)")  # the author of the callback
        expect(timeline).to_contain_text("reopened")
        expect(page.locator("#verified")).to_have_text("全程留痕完整")
        holder = httpx.get(f"{stack.url('audit')}/v1/cases/{case['case_id']}", headers=OPERATOR).json()["holder"]
        expect(page.locator("#holder")).to_contain_text(UNIT_NAMES[holder["unit_id"]])  # a name, not only an id
        trace_id = stack.timeline(case["case_id"])[0]["trace_id"]
        expect(page.locator("#trace")).to_have_text(trace_id)
        expect(page.locator("#report-text")).to_contain_text("商场门口有人打架")
        _shot(page, "case")
        page.click("#lang")  # the English toggle
        expect(page.locator("#nav button[data-view=case]")).to_have_text("Case")
        page.click("#lang")
        _clean(page)
    finally:
        page.close()


def _map_row(page, code: str):
    return page.locator(f"#map-table tr[data-code='{code}']")


def _map_colour(page, code: str) -> str:
    """The fill ECharts gave the division's shape (what the operator sees)."""
    return page.evaluate("""(code) => {
        const chart = echarts.getInstanceByDom(document.getElementById("map"));
        const data = chart.getModel().getSeriesByIndex(0).getData();
        return data.getItemVisual(data.indexOfName(code), "style").fill;
    }""", code)


def test_the_map_colours_a_town_when_a_case_there_goes_overdue(browser, stack):
    town = "339902004"  # 马坪镇: its police station is the tests' own (silent) system, so cases stay open
    page = _signed_in(browser, stack)
    try:
        page.click("#nav button[data-view=county]")
        page.select_option("#map-measure", "overdue")
        row = _map_row(page, town)
        expect(row).to_be_visible(timeout=10_000)
        before = int(row.get_attribute("data-overdue"))
        colour_before = _map_colour(page, town)

        case = _submit(stack, "商场门口有人打架，有人受伤", "339902004001")
        _wait_for(stack, case["case_id"], "org.onewindow.case.dispatched.v1")
        # the clock runs out: its due time moved into the past, the router's supervision finds it red
        _off_the_loop(stack.sql, "UPDATE router.clocks SET due_at = now() - interval '1 minute', next_check = now()"
                      " WHERE case_id = $1::uuid", case["case_id"])
        expect(row).to_have_attribute("data-overdue", str(before + 1), timeout=60_000)
        deadline = time.monotonic() + 10
        while _map_colour(page, town) == colour_before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _map_colour(page, town) != colour_before, "the town's colour did not change"
        page.wait_for_timeout(600)  # let the map's animation settle before the picture
        _shot(page, "county")
        _clean(page)
    finally:
        page.close()


def test_quarterly_ranking_exported_as_csv_equals_the_metrics_api(browser, stack):
    _submit(stack, "商场门口有人打架，有人受伤", "339901002001")  # at least one dispatch this quarter
    page = _signed_in(browser, stack)
    try:
        page.click("#nav button[data-view=county]")
        page.select_option("#rank-by", "unit")
        page.select_option("#rank-period", "quarter")
        expect(page.locator("#ranking tbody tr[data-key]").first).to_be_visible(timeout=15_000)
        period = page.locator("#rank-which").input_value()
        with page.expect_download() as download:
            page.click("#csv")
        text = Path(download.value.path()).read_text(encoding="utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        api = httpx.get(f"{stack.url('audit')}/v1/metrics", params={"by": "unit", "period": "quarter"},
                        headers=OPERATOR, timeout=10).json()
        figures = {f["key"]: f for f in api["figures"] if f["period"] == period}
        ranks = {r["key"]: r["rank"] for r in api["ranking"] if r["period"] == period}
        assert rows and {r["key"] for r in rows} == set(figures)
        for r in rows:
            f = figures[r["key"]]
            assert r["period"] == period and int(r["dispatches"]) == f["dispatches"]
            for rate in ("acknowledged_on_time_rate", "handled_on_time_rate", "satisfaction_rate",
                         "mediation_success_rate"):
                assert (float(r[rate]) if r[rate] else None) == f[rate], (r["key"], rate)
            assert (int(r["returns"]), int(r["escalations"])) == (f["returns"], f["escalations"])
            assert (int(r["rank"]) if r["rank"] else None) == ranks.get(r["key"])
        assert all(r["name"] == UNIT_NAMES[r["key"]] for r in rows)  # unit names beside the ids
        # the printable 季报: only the ranking, with its title
        page.emulate_media(media="print")
        expect(page.locator("#report-title")).to_contain_text("季报")
        expect(page.locator("#map")).to_be_hidden()
        _shot(page, "report")
        page.emulate_media(media="screen")
        _clean(page)
    finally:
        page.close()


def test_an_operator_of_one_county_sees_nothing_of_another(browser, stack):
    theirs = _submit(stack, "小区门口的路灯坏了一个多星期了，晚上走路看不见", "339901001002")  # 东湖区
    mine = _submit(stack, "小区门口的路灯坏了一个多星期了，晚上走路看不见", "339902002003")  # 西山县
    for c in (theirs, mine):
        _wait_in_queue(stack, "manual", c["case_id"])
    dispatched = _submit(stack, "商场门口有人打架，有人受伤", "339902001001")  # 城关镇: a figure for the rankings
    _wait_for(stack, dispatched["case_id"], "org.onewindow.case.dispatched.v1")
    page = _signed_in(browser, stack, "operator-token-xishan")
    try:
        expect(page.locator("#queue tr", has_text=mine["case_number"])).to_be_visible(timeout=10_000)
        expect(page.locator("#queue tbody")).not_to_contain_text("339901-")
        # the live feed: an event of their own county arrives, none of the other's
        page.click("#nav button[data-view=live]")
        r = httpx.post(f"{stack.url('router')}/v1/cases/{theirs['case_id']}/close", headers=OPERATOR, timeout=10,
                       json={"code": "answered", "note": "已答复"})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{stack.url('router')}/v1/cases/{mine['case_id']}/close", headers=auth("operator-token-xishan"),
                       timeout=10, json={"code": "answered", "note": "已答复"})
        assert r.status_code == 200, r.text
        expect(page.locator("#feed")).to_contain_text(mine["case_number"], timeout=20_000)
        stack.wait_timeline(theirs["case_id"], "org.onewindow.case.closed_directly.v1")
        page.wait_for_timeout(1500)  # the feed has had time to show the other county's event, had it leaked
        expect(page.locator("#feed")).not_to_contain_text(theirs["case_number"])
        expect(page.locator("#feed")).not_to_contain_text("339901-")
        _shot(page, "live")
        # the case page: the other county's case does not exist for this operator
        page.click("#nav button[data-view=case]")
        page.fill("#number", theirs["case_number"])
        page.click("#search")
        expect(page.locator("#case-none")).to_be_visible(timeout=10_000)
        # the map and the rankings: only their own county's towns
        page.click("#nav button[data-view=county]")
        expect(page.locator("#map-table tr").first).to_be_visible(timeout=10_000)
        codes = page.locator("#map-table tr").evaluate_all("rows => rows.map(r => r.dataset.code)")
        assert codes and all(c.startswith("339902") for c in codes), codes
        page.select_option("#rank-by", "town")
        expect(page.locator("#ranking tbody tr[data-key]").first).to_have_attribute(
            "data-key", re.compile(r"^\d+$"), timeout=10_000)  # towns, not the units shown before
        keys = page.locator("#ranking tbody tr[data-key]").evaluate_all("rows => rows.map(r => r.dataset.key)")
        assert keys and all(k.startswith("339902") for k in keys), keys
        # the figures behind the map and the trend charts are cut to the jurisdiction in the API
        audit = stack.url("audit")
        overview = httpx.get(f"{audit}/v1/overview/divisions", params={"level": "county"},
                             headers=auth("operator-token-xishan"), timeout=10).json()["divisions"]
        assert [d["code"] for d in overview] in ([], ["339902"])
        trend = lambda who: httpx.get(f"{audit}/v1/trends", params={"by": "channel", "days": 1},  # noqa: E731
                                      headers=auth(who), timeout=10).json()
        city, county = trend("operator-token-0001"), trend("operator-token-xishan")
        received = lambda t: sum(t["received"].get("hotline", [0]))  # noqa: E731
        closed = lambda t: sum(t["closed"].get("hotline", [0]))  # noqa: E731
        assert received(county) >= 1 and closed(county) >= 1  # their own case came in and was closed today
        assert received(city) > received(county) and closed(city) > closed(county)  # the other county's too
        _clean(page)
    finally:
        page.close()


def test_the_names_the_console_shows_come_from_the_router_for_operators_only(stack):
    url = f"{stack.url('router')}/v1/reference"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=auth("clerk-token-0001"), timeout=10).status_code == 403
    ref = httpx.get(url, headers=OPERATOR, timeout=10).json()
    names = {u["id"]: u["name"] for u in ref["units"]}
    assert UNIT_NAMES.items() <= names.items()  # the unit directory, and the grids as units (网格)
    assert all(i.startswith("grid-") and names[i].endswith("网格") for i in names.keys() - UNIT_NAMES.keys())
    fight = next(c for c in ref["categories"] if c["code"] == "public_security.violence.fight")
    assert fight["name"] == "打架斗殴" and fight["unit_kind"] == "police"
