"""The console's pure pieces: the map's figures per division, the daily series of the trend charts,
what config.json tells the page, CORS only for the configured console origins, and the synthetic
boundary file matching the division directory."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.audit.api import console_config_of, console_headers
from services.audit.domain import daily_series, division_overview
from shared.divisions import load_divisions
from shared.http import install_cors
from shared.settings import Settings

ROOT = Path(__file__).parents[2]


def test_division_overview_takes_the_worst_risk_of_the_open_cases():
    rows = [{"code": "339901001", "open": 3, "overdue": 1, "high_risk": 2, "red_risk": 1},
            {"code": "339901002", "open": 2, "overdue": 0, "high_risk": 1, "red_risk": 0},
            {"code": "339902001", "open": 1, "overdue": 0, "high_risk": 0, "red_risk": 0}]
    assert [(d["code"], d["risk"], d["open"], d["overdue"]) for d in division_overview(rows)] == [
        ("339901001", "red", 3, 1), ("339901002", "orange", 2, 0), ("339902001", "green", 1, 0)]


def test_daily_series_has_every_day_and_one_aligned_list_per_key():
    rows = [{"day": date(2026, 12, 1), "flow": "received", "key": "hotline", "cases": 2},
            {"day": date(2026, 12, 3), "flow": "received", "key": "hotline", "cases": 1},
            {"day": date(2026, 12, 3), "flow": "received", "key": "grid", "cases": 4},
            {"day": date(2026, 12, 2), "flow": "closed", "key": "hotline", "cases": 1},
            {"day": date(2026, 11, 30), "flow": "closed", "key": "grid", "cases": 9}]  # before the window
    s = daily_series(rows, date(2026, 12, 1), date(2026, 12, 3))
    assert s["days"] == ["2026-12-01", "2026-12-02", "2026-12-03"]
    assert s["received"] == {"hotline": [2, 0, 1], "grid": [0, 0, 4]}
    assert s["closed"] == {"hotline": [0, 1, 0]}


def test_daily_series_of_nothing_still_has_the_days():
    s = daily_series([], date(2026, 2, 27), date(2026, 3, 1))
    assert s == {"days": ["2026-02-27", "2026-02-28", "2026-03-01"], "received": {}, "closed": {}}


def test_config_names_the_services_and_the_sign_in_without_secrets():
    s = Settings(auth_issuer="https://idp.example/realms/city", console_router_url="https://router.example",
                 console_oidc_client_id="console", audit_signing_key="signing-key-never-shown")
    c = console_config_of(s)
    assert c["services"] == {"router": "https://router.example", "intake": None}
    assert c["signin"] == {"oidc": {"issuer": "https://idp.example/realms/city", "client_id": "console",
                                    "authorization_endpoint": None, "token_endpoint": None}, "dev_token": False}
    assert "signing-key-never-shown" not in json.dumps(c)
    assert console_config_of(Settings())["signin"] == {"oidc": None, "dev_token": False}  # production default


def _app(origins: list[str]) -> TestClient:
    app = FastAPI()

    @app.get("/v1/queues/manual")
    def queue() -> dict:
        return {"cases": []}

    install_cors(app, Settings(console_origins=origins))
    return TestClient(app)


def test_cors_answers_the_console_origin_only():
    client = _app(["http://console.example"])
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = client.options("/v1/queues/manual", headers={"Origin": "http://console.example", **ask})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "http://console.example"
    assert "access-control-allow-credentials" not in ok.headers  # bearer tokens, never cookies
    other = client.options("/v1/queues/manual", headers={"Origin": "http://evil.example", **ask})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in client.get("/v1/queues/manual", headers={
        "Origin": "http://evil.example"}).headers


def test_no_console_origins_no_cors():
    r = _app([]).options("/v1/queues/manual", headers={"Origin": "http://console.example",
                                                       "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_the_boundaries_cover_every_county_and_town_and_are_closed_rings():
    shapes = json.loads((ROOT / "shared/reference/divisions.geojson").read_text(encoding="utf-8"))
    directory = load_divisions()
    wanted = {(d.code, d.name) for d in directory.division if d.level in ("county", "town")}
    assert {(f["properties"]["code"], f["properties"]["name"]) for f in shapes["features"]} == wanted
    for f in shapes["features"]:
        ring = f["geometry"]["coordinates"][0]
        assert f["properties"]["synthetic"] is True and ring[0] == ring[-1] and len(ring) >= 4


def test_the_page_runs_only_its_own_scripts_and_talks_only_to_the_services_and_the_issuer():
    s = Settings(console_router_url="https://router.city.example/", console_intake_url="https://intake.city.example",
                 auth_issuer="https://idp.city.example/realms/city")
    policy = dict(p.strip().split(" ", 1) for p in console_headers(s)["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["connect-src"].split() == ["'self'", "https://idp.city.example", "https://intake.city.example",
                                             "https://router.city.example"]
    assert console_headers(Settings())["Referrer-Policy"] == "no-referrer"
