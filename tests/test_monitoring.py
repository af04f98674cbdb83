"""The Prometheus alert rules and the Grafana dashboard in config/: valid for promtool, and
about metrics (and labels) that a running bounced really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bounced.metrics import Metrics

from .helpers import ROOT, asend, days_ago, dsn, make_settings, running_daemon

RULES = ROOT / "config" / "prometheus" / "bounced-alerts.yml"
RULE_TESTS = ROOT / "config" / "prometheus" / "bounced-alerts.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "bounced-dashboard.json"
# Where .ci/install-promtool unpacks Debian's prometheus package when promtool is not on PATH
# (unpacked, so that no Prometheus service is started on this machine).
PROMTOOL_CACHE = Path("/var/cache/bounced-test/promtool/usr/bin/promtool")
METRIC = re.compile(r"\b(bounced_[a-z_]+)(\{[^}]*\})?")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                            "_created"), "gauge": ("",)}


def promtool() -> str:
    found = shutil.which("promtool") or (str(PROMTOOL_CACHE) if PROMTOOL_CACHE.exists() else None)
    if found is None:
        pytest.skip("promtool not installed (.ci/install-promtool unpacks Debian's prometheus)")
    return found


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard query."""
    text = RULES.read_text()
    exprs = [(f"rule {m.group(1)}", m.group(2)) for m in re.finditer(
        r"- alert: (\w+)\n\s+expr: (?:>-\n)?((?:.+\n)+?)\s+(?:for|labels):", text)]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [(f"panel {p['title']!r}", t["expr"]) for p in dashboard["panels"]
              for t in p["targets"]]
    exprs += [("variable " + v["name"], v["definition"])
              for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    """promtool check rules accepts the rules; promtool test rules runs their unit tests
    (dead letters, a stalled worker, a failing action, a tripped breaker)."""
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert check.returncode == 0 and "SUCCESS: 10 rules found" in check.stdout, \
        check.stdout + check.stderr
    test = subprocess.run([tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                          capture_output=True, text=True, timeout=60, check=False)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses as PromQL (promtool checks them as recording rules)."""
    tool = promtool()
    rules = [{"record": f"dashboard:query{n}", "expr": expr.replace(
        "$__rate_interval", "5m").replace("$instance", ".*")}
        for n, (where, expr) in enumerate(expressions())
        if where.startswith("panel")]
    assert len(rules) >= 15
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


async def test_every_metric_and_label_used_exists_in_a_running_daemon(tmp_path: Path) -> None:
    """Each bounced_* series the rules and the dashboard query is exported by the /metrics
    of a running daemon that has processed bounces, with the right type suffix, and each label
    they select or group by is one of that metric's labels."""
    async with running_daemon(make_settings(tmp_path)) as d:
        for age in (10, 6, 2):
            rp = d.signer.return_path("u1", "alice@example.net", day=days_ago(age))
            assert (await asend(d.port, [rp], dsn("alice@example.net", return_path=rp)))[
                "DATA"][0] == 250
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{d.http_port}/metrics") as resp:
            text = await resp.text()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    labels = {m._name: set(m._labelnames) for m in vars(Metrics()).values()
              if hasattr(m, "_labelnames")}
    used = 0
    for where, expr in expressions():
        known: set[str] = set()
        for match in METRIC.finditer(expr):
            series, selector = match.group(1), match.group(2) or ""
            family = next((f for f in families if series.startswith(f)
                           and series[len(f):] in SUFFIXES.get(families[f], ())), None)
            assert family is not None, f"{where}: {series} is not exported"
            selected = set(re.findall(r"(\w+)\s*[=!]~?", selector)) - {"instance", "job", "le"}
            assert selected <= labels[family], f"{where}: {series} has no label {selected}"
            known |= labels[family]
            used += 1
        grouped = {name.strip() for group in BY.findall(expr) for name in group.split(",")
                   if name.strip()} - {"instance", "job", "le"}
        assert grouped <= known, f"{where}: no metric in it has the labels {grouped - known}"
    assert used >= 25
    # every family the daemon exports is on the dashboard
    on_dashboard = " ".join(e for w, e in expressions() if not w.startswith("rule"))
    exported = {f for f in families if f.startswith("bounced_") and not f.endswith("_created")}
    assert {f for f in exported if f not in on_dashboard} == set()
