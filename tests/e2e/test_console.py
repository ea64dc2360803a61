"""The operator console in a real headless browser (Debian's chromium driven by Playwright): the live
feed shows a case posted during the test, search shows its timeline, trace id and verification."""

from __future__ import annotations

import struct
import zlib

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import TOKENS, unique

pytestmark = pytest.mark.e2e
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def test_console_live_feed_search_and_screenshot(stack, tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{stack.url('audit')}/v1/console")
            page.fill("#token", TOKENS["operator-token-0001"])
            page.click("#connect")
            expect(page.locator("#status")).to_have_text("live", timeout=10_000)

            r = stack.submit({"channel": "hotline", "description": unique("商场门口有人打架"),
                              "location": {"division_code": "339901002001"}})
            case = r.json()
            feed = page.locator("#feed")
            expect(feed).to_contain_text(case["case_number"], timeout=20_000)
            expect(feed).to_contain_text("case.dispatched", timeout=20_000)
            # the screenshot shows the case's line in the feed: the line is rendered, visible in the
            # viewport, and its own picture holds text (a blank box compresses to a few hundred bytes)
            line = page.locator("#feed div", has_text=case["case_number"]).first
            expect(line).to_be_in_viewport()
            shot = tmp_path / "console.png"
            page.screenshot(path=str(shot), full_page=True)
            line_shot = line.screenshot(path=str(tmp_path / "line.png"))
            box = line.bounding_box()
            assert shot.stat().st_size > 10_000 and box["width"] > 200 and box["height"] >= 10
            assert _distinct_byte_values(line_shot) > 20, "the feed line's picture is blank"

            page.fill("#number", case["case_number"])
            page.click("#search")
            expect(page.locator("#verified")).to_have_text("trace intact", timeout=10_000)
            expect(page.locator("#findings li")).to_have_count(0)
            expect(page.locator("#holder")).to_contain_text("police-")
            trace_id = stack.timeline(case["case_id"])[0]["trace_id"]
            expect(page.locator("#trace")).to_have_text(trace_id)
            page.click("#refresh")
            expect(page.locator("#metrics")).to_contain_text("police-", timeout=10_000)

            denied = browser.new_page()
            denied.goto(f"{stack.url('audit')}/v1/console")
            denied.fill("#token", TOKENS["clerk-token-0001"])
            denied.click("#connect")
            expect(denied.locator("#status")).to_have_text("refused: 403", timeout=10_000)
        finally:
            browser.close()
