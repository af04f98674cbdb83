"""The dashboard page in a real headless Chromium: it loads from the daemon, draws the seeded
store's figures (checked on the canvas's pixels), shows hostile report fields as text, and
logs no console error. A screenshot is left in test-artifacts/ (not in git)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bounced.model import AddressState, DomainStats, Incident, NewMessage, Plan, TokenFields
from bounced.policy import core
from bounced.policy.core import Outcome
from bounced.store import Store, open_store
from bounced.verp import fingerprint

from .helpers import ROOT, make_settings, running_daemon
from .test_overview import LEASE, NOW, at, bounce

CHROMIUM = os.environ.get("BOUNCED_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BOUNCED_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
# Report fields are hostile: a receiving domain and a reason that are markup.
EVIL_DOMAIN = '<img src=x onerror="window.__pwned=1">.example'
EVIL_BREAKER = '"><svg onload="window.__pwned=2">.example'
EVIL_REASON = "<script>window.__pwned=3</script>"


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found (apt-get install chromium chromium-driver; .ci/run does)"
    return None


class Trip:
    """A planner that records the incident as counting and trips the domain's breaker."""

    def __call__(self, state: AddressState | None, history: Sequence[Incident],
                 new: Sequence[Incident], domain: DomainStats | None = None) -> Plan:
        return Plan(incidents=tuple(dataclasses.replace(i, counts=True) for i in new),
                    decision=None, trip=True, domain_addresses=25)


async def trip_breaker(store: Store, domain: str) -> None:
    # The token's fingerprint is the address's: an incident names (and counts towards the
    # breaker of) only the address its token was signed for.
    token = TokenFields(subject="b1", stream=None, key_id="k1", day=NOW.date(),
                        fingerprint=fingerprint(f"x@{domain}"), token_id="tb1")
    [mid] = await store.add_messages([NewMessage(
        received_at=at(0.2), peer="p", mail_from="", rcpt_to="bounce-tb1@b.test", token=token,
        raw=b"raw\r\n")])
    [job] = [j for j in await store.claim("w", NOW, LEASE, 100) if j.id == mid]
    incident = Incident(
        id=None, message_id=mid, subject="b1", fingerprint=token.fingerprint,
        address=f"x@{domain}",
        token_id="tb1", send_day=NOW.date(), received_at=at(0.2), kind="bounce",
        action="failed", status="5.1.1", reply_code="550", reason="userunknown", hard=True,
        counts=True, diagnostic="550", remote_mta="mx")
    await core.finish(store, job, "w", Outcome(kind="bounce", classification={},
                                         incidents=(incident,),
                                         breaker_window=dt.timedelta(hours=1)), Trip(), NOW)


async def seed(url: str) -> dict[str, int]:
    """Bounces on several days over three reasons, unconfirmations on two days, a tripped
    breaker, a job waiting; returns the bounces per day (ISO day -> count)."""
    store = open_store(url)
    await store.open()
    try:
        days = {1: ["userunknown", "userunknown"], 3: ["mailboxfull"], 4: [EVIL_REASON],
                6: ["userunknown", "mailboxfull", "userunknown"], 9: ["hostunknown"]}
        n = 0
        for age, reasons in days.items():
            for reason in reasons:
                n += 1
                address = f"user{n}@{EVIL_DOMAIN if n % 3 == 0 else 'example.net'}"
                unconfirm = at(age - 0.1) if age in (1, 6) and n % 2 else None
                await bounce(store, f"s{n}", address, at(age + 0.05), reason=reason,
                             unconfirm_at=unconfirm)
        await trip_breaker(store, EVIL_BREAKER)
        await store.add_messages([NewMessage(
            received_at=at(0.1), peer="p", mail_from="", rcpt_to="bounce-w@b.test",
            token=TokenFields(subject="w", stream=None, key_id="k1", day=NOW.date(),
                              fingerprint="fw", token_id="tw"), raw=b"x")])
    finally:
        await store.close()
    per_day: dict[str, int] = {}
    for age, reasons in days.items():
        day = at(age + 0.05).date().isoformat()
        per_day[day] = per_day.get(day, 0) + len(reasons)
    per_day[at(0.2).date().isoformat()] = per_day.get(at(0.2).date().isoformat(), 0) + 1
    return per_day


# In the page: for each day of the bounces chart, the topmost pixel of a bar colour in the
# column at the day's x, and where the day's total says the bar's top should be.
COLUMNS_JS = """
const state = window.bouncedDashboard, stats = state.stats;
const result = {};
for (const [name, u] of Object.entries(state.charts)) {
  const ctx = u.ctx, box = u.bbox;
  const fills = u.series.slice(1).map(s => {
    ctx.fillStyle = s.fill(u, 1);  // normalised to #rrggbb by the canvas
    return ctx.fillStyle;
  });
  const image = ctx.getImageData(0, 0, ctx.canvas.width, ctx.canvas.height).data;
  const hex = (i) => '#' + [0, 1, 2].map(k => image[i + k].toString(16).padStart(2, '0')).join('');
  const days = [];
  for (let d = 0; d < u.data[0].length; d++) {
    const x = Math.round(u.valToPos(u.data[0][d], 'x', true));
    const total = u.data[1][d];  // the first series drawn is the running total of all
    let top = null, pixels = 0;
    for (let y = Math.floor(box.top); y < box.top + box.height; y++) {
      const i = (y * ctx.canvas.width + x) * 4;
      if (image[i + 3] === 255 && fills.includes(hex(i))) {
        pixels++;
        if (top === null) top = y;
      }
    }
    days.push({day: stats.daily.days[d], total: total, top: top, pixels: pixels,
               expected: u.valToPos(total, 'y', true)});
  }
  result[name] = days;
}
return result;
"""


def browse(url: str, screenshot: Path) -> dict[str, Any]:
    """Open the page in headless Chromium; return what it shows and logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="bounced-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1200,1500",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "const s = window.bouncedDashboard; "
            "return !!s && (s.error !== null || (s.stats !== null && !!s.charts.unconfirmed));"))
        shown = driver.execute_script(
            "const s = window.bouncedDashboard; return {error: s.error, title: document.title,"
            " domains: document.querySelector('#domains tbody').textContent,"
            " breakers: document.querySelector('#breakers tbody').textContent,"
            " legend: document.querySelector('#chart-bounces').textContent,"
            " described: document.querySelector('#chart-unconfirmed').getAttribute('aria-label'),"
            " cards: document.querySelector('.cards').textContent,"
            " injected: document.querySelectorAll('main img, main svg, main script').length,"
            " pwned: window.__pwned === undefined ? null : window.__pwned,"
            " canvases: document.querySelectorAll('canvas').length};")
        shown["columns"] = driver.execute_script(COLUMNS_JS) if not shown["error"] else {}
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        shown["console"] = [entry for entry in driver.get_log("browser")
                            if entry["level"] in ("SEVERE", "WARNING")]
        return shown
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def test_dashboard_draws_the_seeded_store_in_headless_chromium(
        tmp_path: Path, store_url: str) -> None:
    """The page loads, its charts draw each day's bounces and unconfirmations at the right
    height, hostile domains and reasons show as text, and the console stays clean."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    per_day = await seed(store_url)
    settings = make_settings(tmp_path, store_url)
    backend = store_url.split(":", 1)[0]
    screenshot = ARTIFACTS / f"dashboard-{backend}.png"
    async with running_daemon(settings, worker=False) as d:
        shown = await asyncio.to_thread(
            browse, f"http://127.0.0.1:{d.http_port}/dashboard?since=14d", screenshot)
    assert shown["error"] is None and shown["console"] == [], shown
    assert shown["title"] == "bounced dashboard" and shown["canvases"] == 2
    # Hostile fields are shown, as text, and ran nothing.
    assert EVIL_DOMAIN in shown["domains"] and EVIL_BREAKER in shown["breakers"]
    assert "tripped" in shown["breakers"] and EVIL_REASON in shown["legend"]
    assert shown["injected"] == 0 and shown["pwned"] is None
    assert "1 waiting" in shown["cards"]  # the queued job
    assert shown["described"].startswith("unconfirmations: 3 from ")  # for screen readers
    # Each day's stacked bar reaches the height of its total; days without bounces are empty.
    bounces = {c["day"]: c for c in shown["columns"]["bounces"]}
    assert len(bounces) == 15
    for day, column in bounces.items():
        assert column["total"] == per_day.get(day, 0), (day, column)
        if column["total"]:
            assert column["pixels"] > 5, (day, column)
            assert abs(column["top"] - column["expected"]) <= 2, (day, column)
        else:
            assert column["pixels"] == 0, (day, column)
    unconfirmed = [c for c in shown["columns"]["unconfirmed"] if c["total"]]
    assert sum(c["total"] for c in unconfirmed) == 3
    assert all(c["pixels"] > 5 and abs(c["top"] - c["expected"]) <= 2 for c in unconfirmed)
    assert screenshot.stat().st_size > 10_000


async def test_dashboard_files_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    """/dashboard and its four files come from the package, under a CSP that allows only the
    daemon's own scripts; any other name is a 404."""
    async with running_daemon(make_settings(tmp_path), worker=False) as d, \
            aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.http_port}"
        async with http.get(base + "/dashboard") as resp:
            page = await resp.text()
            assert resp.status == 200 and resp.content_type == "text/html"
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe" not in csp and "http" not in page.split("<footer>")[0].lower()
        for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css"),
                            ("uPlot.iife.min.js", "text/javascript"),
                            ("uPlot.min.css", "text/css")):
            async with http.get(f"{base}/dashboard/{name}") as resp:
                assert resp.status == 200 and resp.content_type == media, name
                assert f'"dashboard/{name}"' in page
        for bad in ("index.html", "..%2F..%2Fpyproject.toml", "vendor%2FuPlot.LICENSE", "x"):
            async with http.get(f"{base}/dashboard/{bad}") as resp:
                assert resp.status == 404, bad


async def test_dashboard_of_an_empty_store_says_so_without_errors(tmp_path: Path) -> None:
    """A fresh daemon's dashboard: empty charts and tables that say nothing happened, no
    console error."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    async with running_daemon(make_settings(tmp_path), worker=False) as d:
        shown = await asyncio.to_thread(
            browse, f"http://127.0.0.1:{d.http_port}/dashboard", ARTIFACTS / "dashboard-empty.png")
    assert shown["error"] is None and shown["console"] == [], shown
    assert "no incidents in this period" in shown["domains"]
    assert "no breaker has tripped" in shown["breakers"]
    assert "0 waiting" in shown["cards"] and "0 unconfirmed" in shown["cards"]
    assert all(c["pixels"] == 0 for chart in shown["columns"].values() for c in chart)
    assert len(shown["columns"]["bounces"]) == 8  # the default period: 7 days back, and today
