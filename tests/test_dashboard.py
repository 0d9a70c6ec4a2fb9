"""The dashboard at `/`, in headless Chromium, against the real app on a seeded store.

Chromium is Debian's `chromium` package (/usr/bin/chromium) driven by the `playwright`
package; nothing is downloaded. Without a browser these tests fail, unless
LLMPROF_SKIP_BROWSER=1 says to skip them. Screenshots go to a folder under the
test's tmp dir and are copied to /tmp/llmprof-screens.

The seed (tests/support/seed.py) puts calls 1-2 yesterday and 3-7 today, UTC; the
browser runs in UTC so the day buckets are known.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import storage
from api.app import create_app
from storage.trace import Trace
from tests.support.seed import run_async, seed
from tests.support.serve import serve

CHROMIUM = os.environ.get("LLMPROF_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "s3cret-token"
SHOTS = Path("/tmp/llmprof-screens")
VIEWPORT = {"width": 1440, "height": 900}


def _no_browser(reason: str) -> None:
    if os.environ.get("LLMPROF_SKIP_BROWSER") == "1":
        pytest.skip(f"LLMPROF_SKIP_BROWSER=1: {reason}")
    pytest.fail(
        f"{reason}. Install Debian's chromium (apt-get install -y chromium) and the dev extras "
        "(playwright), or set LLMPROF_SKIP_BROWSER=1 to skip the dashboard tests",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _no_browser(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30000)
        except Error as e:
            _no_browser(f"Chromium at {CHROMIUM} did not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def _day0() -> float:
    return (time.time() // 86400) * 86400


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The real app with a token, on the seeded SQLite store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'llmprof.db'}"
    day0 = _day0()
    seed(url, day0)
    with serve(create_app(db_url=url, token=TOKEN)) as base:
        yield {"base": base, "day0": day0, "url": url}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screens")


def _shot(page, shots: Path, name: str, **kw) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=path, **kw)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def _page(browser, base: str, hash_: str, *, token: str | None = TOKEN, scheme="light", **kw):
    ctx = browser.new_context(
        viewport=kw.pop("viewport", VIEWPORT),
        timezone_id="UTC",
        color_scheme=scheme,
        locale="en-US",
    )
    if token:
        ctx.add_init_script(f"localStorage.setItem('llmprof.token', {token!r})")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.errors = errors
    page.goto(f"{base}/{kw.pop('query', '')}{hash_}")
    return page


def _cells(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{selector} td").all_inner_texts()]


def test_page_and_assets_are_served_read_only(site: dict) -> None:
    base = site["base"]
    page = httpx.get(f"{base}/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "/static/app.js?v=" in page.text and "/static/app.css?v=" in page.text
    js = httpx.get(f"{base}/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    again = httpx.get(f"{base}/static/app.js", headers={"if-none-match": js.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert httpx.head(f"{base}/static/app.css").status_code == 200
    assert httpx.get(f"{base}/static/secrets.txt").status_code == 404
    # the open /static/ prefix is no way around the token
    for sneaky in (
        "/static/..%2Fapp.py",
        "/static/%2E%2E/api/traces",
        "/static/x/../../api/traces",
    ):
        r = httpx.get(f"{base}{sneaky}")
        assert r.status_code in (401, 404) and "prompt_tokens" not in r.text, sneaky
    assert httpx.post(f"{base}/").status_code == 405
    # the page is open, the data is not
    assert httpx.get(f"{base}/api/traces").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{base}/api/traces", headers=auth).status_code == 200


def test_token_prompt_then_calls_list(browser, site: dict, shots: Path) -> None:
    from playwright.sync_api import expect

    page = _page(browser, site["base"], "#/calls", token=None)
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    page.fill("#token-input", TOKEN)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    rows = page.locator(".calls-table tbody tr")
    expect(rows).to_have_count(7)
    assert page.evaluate("localStorage.getItem('llmprof.token')") == TOKEN
    today = _day(site["day0"])
    assert _cells(page, 'tr[data-id="4"]') == [
        f"00:02:00\n{today}",
        "claude-sonnet-4-5\nanthropic · turn 1",
        "10,000",
        "500",
        "$0.0228",
        "2.14 s",
        "tool schemas\n40.0%",
    ]
    assert _cells(page, 'tr[data-id="5"]')[1:5] == [
        "gpt-4o 429\nopenai · turn 1",
        "—",
        "—",
        "$0.00",
    ]
    assert page.locator(".calls-table tbody tr").first.get_attribute("data-id") == "7"
    expect(page.locator("#status")).to_contain_text("Live")
    _shot(page, shots, "calls-list")
    assert {e for e in page.errors} <= {
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    }
    page.context.close()


def test_call_detail_and_flame_graph(browser, site: dict, shots: Path) -> None:
    from playwright.sync_api import expect

    for scheme in ("dark", "light"):
        page = _page(browser, site["base"], "#/calls/4", scheme=scheme)
        expect(page.locator(".fg-node").first).to_be_visible()
        _shot(page, shots, f"call-detail-{scheme}")
        if scheme == "dark":
            page.context.close()
    tiles = {
        k: page.locator(f'.call [data-k="{k}"] dd').inner_text()
        for k in ("uncached", "cached", "cache-write", "output", "reasoning")
        + ("cost", "latency", "ttft", "outcome")
    }
    assert tiles == {
        "uncached": "2,000",
        "cached": "6,000",
        "cache-write": "2,000",
        "output": "500",
        "reasoning": "120",
        "cost": "$0.0228",
        "latency": "2.14 s",
        "ttft": "413 ms",
        "outcome": "ok",
    }
    expect(page.locator("#flame-title")).to_have_text("Context: where the 10,000 input tokens went")
    expected = {
        "system prompt": ["system prompt", "2,500", "25.0%", "$0.003825"],
        "tool schemas": ["tool schemas", "4,000", "40.0%", "$0.00612"],
        "tool schemas/read_file": ["↳ read_file", "1,500", "15.0%", "$0.002295"],
        "tool schemas/bash": ["↳ bash", "500", "5.0%", "$0.000765"],
        "user input": ["user input", "300", "3.0%", "$0.000459"],
        "history (assistant)": ["history (assistant)", "2,000", "20.0%", "$0.00306"],
        "tool results/grep": ["↳ grep", "200", "2.0%", "$0.000306"],
    }
    for path, cells in expected.items():
        assert _cells(page, f'table.parts tr[data-path="{path}"]') == cells, path
    findings = page.locator(".findings li")
    expect(findings).to_have_count(2)
    expect(findings.nth(0).locator(".save")).to_have_text("save $0.001071 · 700 tokens")
    expect(findings.nth(0).locator(".title")).to_have_text("Duplicated content")
    expect(findings.nth(1).locator(".title")).to_have_text("Tool schemas dominate the context")
    first, second = (findings.nth(i).bounding_box() for i in (0, 1))
    assert second["y"] >= first["y"] + first["height"] and second["x"] == first["x"]  # stacked
    expect(page.locator(".reclaim-line")).to_have_text(
        "Reclaimable on this call: $0.001071 (700 tokens)"
    )
    request = page.locator("details.body pre.json").nth(0)
    expect(request).to_contain_text('"content": "Review PR #42"')
    response = page.locator("details.body pre.json").nth(1)
    expect(response).to_contain_text('LGTM with two nits. <img src=x onerror=\\"window.__xss=1\\">')
    assert page.locator(".call img").count() == 0 and page.evaluate("window.__xss") is None
    page.eval_on_selector("#findings-title", "e => e.scrollIntoView()")
    _shot(page, shots, "call-findings-bodies")
    page.eval_on_selector(".detail-pane", "e => { e.scrollTop = 0; }")

    # zoom: click "tool schemas", its children fill the width; hover shows tokens/share/cost
    width = page.eval_on_selector(".flame svg", "e => e.viewBox.baseVal.width")

    def w(path: str) -> float:
        return float(page.get_attribute(f'.fg-node[data-path="{path}"]', "data-w"))

    assert w("tool schemas") == pytest.approx(width * 0.4, abs=0.2)
    page.click('.fg-node[data-path="tool schemas"]')
    expect(page.locator(".crumbs")).to_have_text("context›tool schemas")
    assert w("tool schemas") == pytest.approx(width, abs=0.2)
    assert w("tool schemas/read_file") == pytest.approx(width * 1500 / 4000, abs=0.2)
    assert page.locator('.fg-node[data-path="system prompt"]').count() == 0
    page.hover('.fg-node[data-path="tool schemas/write_file"]')
    expect(page.locator("#tip")).to_have_text(
        "tool schemas/write_file1,200 tokens12.0% of the context30.0% of tool schemas"
        "$0.001836 of the input cost"
    )
    _shot(page, shots, "flame-zoomed")
    # keyboard: Escape zooms out, Enter zooms into the focused part
    page.focus('.fg-node[data-path="tool schemas"]')
    page.keyboard.press("Escape")
    assert w("tool schemas") == pytest.approx(width * 0.4, abs=0.2)
    expect(page.locator(".crumbs")).to_have_text("context")
    page.keyboard.press("ArrowRight")  # tool schemas -> user input
    page.keyboard.press("ArrowRight")  # -> history (assistant)
    page.keyboard.press("ArrowRight")  # -> tool results
    page.keyboard.press("Enter")
    expect(page.locator(".crumbs")).to_have_text("context›tool results")
    assert w("tool results/read_file") == pytest.approx(width * 1000 / 1200, abs=0.2)
    page.click(".flame-bar .reset")
    expect(page.locator(".crumbs")).to_have_text("context")
    assert page.errors == []
    page.context.close()


def test_calls_paging_filters_and_sort(browser, site: dict) -> None:
    from playwright.sync_api import expect

    page = _page(browser, site["base"], "#/calls", query="?page=3")
    rows = page.locator(".calls-table tbody tr")
    ids = lambda: [r.get_attribute("data-id") for r in rows.all()]  # noqa: E731
    expect(rows).to_have_count(3)
    assert ids() == ["7", "6", "5"]
    page.click("text=Load more")
    expect(rows).to_have_count(6)
    page.click("text=Load more")
    expect(rows).to_have_count(7)
    expect(page.locator(".more")).to_be_hidden()

    page.select_option("#f-model", "gpt-4o-mini")
    expect(rows).to_have_count(3)
    assert ids() == ["3", "2", "1"]
    assert "f-model" and "model=gpt-4o-mini" in page.evaluate("location.hash")
    expect(page.locator(".scan-note")).to_contain_text("3 matching of 7 loaded calls")
    page.select_option("#f-model", index=0)
    page.select_option("#f-template", "r-review")
    expect(rows).to_have_count(2)
    assert ids() == ["7", "4"]
    page.select_option("#f-template", index=0)
    page.select_option("#f-provider", "anthropic")
    expect(rows).to_have_count(2)
    page.select_option("#f-provider", index=0)
    page.select_option("#f-sort", "cost")
    expect(rows).to_have_count(7)
    assert ids() == ["4", "7", "6", "3", "2", "1", "5"]
    page.select_option("#f-sort", "tokens")
    assert ids()[:2] == ["4", "7"]
    page.fill("#f-run", "run-alpha")
    page.keyboard.press("Enter")
    expect(page.locator(".scan-note")).to_have_text("Run run-alpha: all 3 calls.")
    assert ids() == ["3", "2", "1"]  # tokens: 4,410 > 2,820 > 1,350
    assert page.errors == []
    page.context.close()


def test_keyboard_navigation(browser, site: dict) -> None:
    from playwright.sync_api import expect

    page = _page(browser, site["base"], "#/calls")
    expect(page.locator(".calls-table tbody tr")).to_have_count(7)
    page.keyboard.press("j")  # into the list
    expect(page.locator('tr[data-id="7"]')).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("j")
    expect(page.locator('tr[data-id="5"]')).to_be_focused()
    page.keyboard.press("k")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site['base']}/#/calls/6")
    expect(page.locator("#call-title")).to_contain_text("gpt-4o #6")
    expect(page.locator('tr[data-id="6"]')).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Escape")
    expect(page).to_have_url(f"{site['base']}/#/calls")
    expect(page.locator('tr[data-id="6"]')).to_be_focused()
    page.keyboard.press("2")
    expect(page.locator(".banner .headline")).to_be_visible()
    expect(page.locator('nav a[data-view="trends"]')).to_have_attribute("aria-current", "page")
    page.keyboard.press("3")
    expect(page.locator(".runs-table")).to_be_visible()
    page.keyboard.press("1")
    page.keyboard.press("/")
    expect(page.locator("#f-model")).to_be_focused()
    page.keyboard.press("?")  # ignored while a field has focus
    expect(page.locator("#help-dialog")).to_be_hidden()
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    assert page.errors == []
    page.context.close()


def test_trends(browser, site: dict, shots: Path) -> None:
    from playwright.sync_api import expect

    today, yday = _day(site["day0"]), _day(site["day0"] - 86400)
    for scheme in ("dark", "light"):
        page = _page(browser, site["base"], "#/trends", scheme=scheme)
        expect(page.locator(".routes-table")).to_be_visible()
        _shot(page, shots, f"trends-{scheme}", full_page=True)
        if scheme == "dark":
            page.context.close()
    expect(page.locator(".banner .headline")).to_have_text(
        "$0.009171 reclaimable: 18.7% of $0.049 spent over 7 calls"
    )
    expect(page.locator(".banner .sources")).to_have_text(
        "caching $0.0081 · duplicates $0.001071 · unused tools $0.00"
    )
    assert page.locator(".banner ol.actions li").all_inner_texts() == [
        "save $0.0081 — Cache the stable prefix (system prompt and tool schemas) with "
        "cache_control (1 call)",
        "save $0.001071 — Remove duplicated content: the same block is sent more than once "
        "in a request (1 call)",
    ]
    expect(page.locator(".daily-chart .readout")).to_have_text(
        f"{today}: $0.0484 · 5 calls · 23,210 tokens"
    )
    page.focus(".daily-chart svg")
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".daily-chart .readout")).to_have_text(
        f"{yday}: $0.000642 · 2 calls · 4,170 tokens"
    )
    assert page.locator(".daily-chart rect.bar").count() == 30
    tiles = page.locator(".totals .tile dd").all_inner_texts()
    assert tiles == ["$0.049", "7", "27,380", "$0.007", "0"]
    assert _cells(page, '.models-table tr[data-model="claude-sonnet-4-5"]') == [
        "claude-sonnet-4-5", "anthropic", "2", "15,700", "40.0%", "$0.0393", "80.2%",
    ]  # fmt: skip
    assert _cells(page, '.models-table tr[data-model="gpt-4o-mini"]') == [
        "gpt-4o-mini", "openai", "3", "8,580", "38.9%", "$0.001198", "2.4%",
    ]  # fmt: skip
    assert _cells(page, '.routes-table tr[data-route="r-agent"]') == [
        "You are a coding agent. +3 tools", "4", "2,725", "28.2%", "$0.009698",
        "gpt-4o, gpt-4o-mini",
    ]  # fmt: skip
    page.click("text=7 days")
    expect(page.locator(".daily-chart rect.bar")).to_have_count(7)
    page.click(".routes-table >> text=You review pull requests. +4 tools")
    expect(page.locator(".calls-table tbody tr")).to_have_count(2)
    assert page.errors == []
    page.context.close()


def test_runs(browser, site: dict, shots: Path) -> None:
    from playwright.sync_api import expect

    page = _page(browser, site["base"], "#/runs")
    expect(page.locator(".runs-table tbody tr")).to_have_count(2)
    assert _cells(page, '.runs-table tr[data-run="run-alpha"]') == [
        "run-alpha", "3", f"{_day(site['day0'])} 00:01:00", "1,200 → 4,100", "8,580",
        "$0.001198", "gpt-4o-mini",
    ]  # fmt: skip
    _shot(page, shots, "runs-list")
    page.click("text=run-alpha")
    expect(page.locator(".run-detail h2")).to_have_text("Run run-alpha")
    tiles = page.locator(".run-tiles .tile dd").all_inner_texts()
    assert tiles == ["3", "8,580", "$0.001198", "15 h 1 min", "1,200 → 4,100 (×3.4)"]
    ctx = page.locator(".ctx-chart .readout")
    expect(ctx).to_have_text(
        "Turn 3: 4,100 input tokens (+1,500) · system prompt 500 · tool schemas 400 · "
        "user input 300 · history (assistant) 1,400 · tool results 1,500"
    )
    assert page.locator(".ctx-chart g.stack").count() == 3
    assert page.locator(".ctx-chart g.stack").nth(0).locator("rect:not(.hit)").count() == 3
    assert page.locator(".ctx-chart g.stack").nth(2).locator("rect:not(.hit)").count() == 5
    page.focus(".ctx-chart svg")
    page.keyboard.press("Home")
    expect(ctx).to_have_text(
        "Turn 1: 1,200 input tokens · system prompt 500 · tool schemas 400 · user input 300"
    )
    page.keyboard.press("ArrowRight")
    expect(ctx).to_contain_text("Turn 2: 2,600 input tokens (+1,400)")
    expect(page.locator(".cost-chart .readout")).to_have_text(
        "Turn 3: $0.000556 · gpt-4o-mini · 812 ms"
    )
    assert _cells(page, '.turns-table tr[data-turn="2"]') == [
        "#2", f"{_day(site['day0'] - 86400)} 09:01:00", "gpt-4o-mini", "2,600", "1,024", "220",
        "$0.000372", "812 ms", "tool results 30.8%",
    ]  # fmt: skip
    _shot(page, shots, "run-detail", full_page=True)
    page.click('.turns-table a[aria-label="Open turn 2 (call 2)"]')
    expect(page.locator("#call-title")).to_contain_text("gpt-4o-mini #2")
    expect(page.locator(".calls-table tbody tr")).to_have_count(3)  # filtered to the run
    assert page.errors == []
    page.context.close()


def test_live_update_without_rerender(browser, tmp_path: Path, shots: Path) -> None:
    """A new call shows up by polling; the rows already there are the same DOM nodes."""
    from playwright.sync_api import expect

    url = f"sqlite:///{tmp_path / 'live.db'}"
    day0 = _day0()
    seed(url, day0)
    with serve(create_app(db_url=url, token="")) as base:
        page = _page(browser, base, "#/calls", token=None, query="?poll=250")
        rows = page.locator(".calls-table tbody tr")
        expect(rows).to_have_count(7)
        page.eval_on_selector('tr[data-id="4"]', "e => { e.__mark = 1; }")
        page.focus('tr[data-id="4"]')

        async def add() -> None:
            store = await storage.open_store(url)
            await store.record(
                Trace(
                    ts=day0 + 600, model="gpt-4.1", provider="openai", prompt_tokens=1234,
                    completion_tokens=56, cost_usd=0.0042, latency_ms=640.0,
                    components={"user input": 1234},
                )
            )  # fmt: skip
            await store.close()

        run_async(add)
        expect(rows).to_have_count(8)
        assert _cells(page, 'tr[data-id="8"]')[1:6] == [
            "gpt-4.1\nopenai · turn 1", "1,234", "56", "$0.0042", "640 ms",
        ]  # fmt: skip
        assert page.eval_on_selector('tr[data-id="4"]', "e => e.__mark") == 1
        expect(page.locator('tr[data-id="4"]')).to_be_focused()
        page.keyboard.press("2")
        expect(page.locator(".totals [data-k=calls] dd")).to_have_text("8")
        page.eval_on_selector(".banner", "e => { e.firstChild.__mark = 1; }")
        seen: list[str] = []
        page.on("request", lambda r: seen.append(r.url.removeprefix(base)))
        # several polls with nothing new: one indexed row each, and no rebuild
        page.wait_for_timeout(1000)
        assert len(seen) >= 2 and set(seen) == {"/api/traces?limit=1"}
        assert page.eval_on_selector(".banner", "e => e.firstChild.__mark") == 1
        _shot(page, shots, "trends-live")
        assert page.errors == []
        page.context.close()
