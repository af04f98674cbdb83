"""The Debian package as an operator meets it: installed files, the system user, the unit,
and the daemon started as the unit starts it, relaying one bounce to `bounced status`,
`bounced stats` and the dashboard (issue 17: from a fresh machine, build, install, start,
relay one bounce, see it).

The package tests run when the package is built and installed and $BOUNCED_TEST_PACKAGE
names the .deb: CI (.ci/run) installs it before the suite and purges it afterwards, and
.ci/package does the same around this file alone. The rest of the suite, run with the
package installed, never uses the installed /usr/bin/bounced or /etc/bounced, which the
first test here checks.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import BOUNCED, ROOT, dsn, free_port, smtp_send

UNIT = Path("/lib/systemd/system/bounced.service")
CONFIG = Path("/etc/bounced/bounced.toml")
KEYS = Path("/etc/bounced/verp-keys")
STATE = Path("/var/lib/bounced")
DOC = Path("/usr/share/doc/bounced")

installed = pytest.mark.skipif(
    not os.environ.get("BOUNCED_TEST_PACKAGE"),
    reason="needs the Debian package installed system-wide: run .ci/package (CI does)")


def test_suite_uses_this_checkout_not_an_installed_bounced() -> None:
    """The suite imports bounced from this checkout and runs the interpreter's command,
    never a package installed on the machine (/usr/bin/bounced,
    /usr/lib/python3/dist-packages), and its commands never read /etc/bounced (CI runs the
    suite with the package installed)."""
    import bounced

    assert Path(bounced.__file__).resolve().is_relative_to(ROOT)
    assert Path(BOUNCED).parent == Path(sys.executable).parent or \
        Path(BOUNCED).read_text().startswith(f"#!{sys.executable}\n")
    # `bounced` by name, as a test or a program it starts would run it
    assert shutil.which("bounced") == BOUNCED
    probe = subprocess.run(
        [BOUNCED, "check-config", "--help"], capture_output=True, text=True, timeout=60,
        check=True)
    assert "usage" in probe.stdout
    seen = subprocess.run(
        [sys.executable, "-c", "import bounced, bounced.config as c; "
         "print(bounced.__file__); print(c.config_path())"],
        capture_output=True, text=True, timeout=60, check=True, cwd="/").stdout.split("\n")
    assert Path(seen[0]).resolve().is_relative_to(ROOT) and seen[1] == "None", seen


def as_bounced(*args: str, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installed command run as the package's user, as an operator would with
    `sudo -u bounced bounced ...`: it finds the service's configuration, store and key."""
    proc = subprocess.run(
        # no --config: every command reads /etc/bounced/bounced.toml, as the service does
        ["/usr/bin/bounced", *args], user="bounced", group="bounced", extra_groups=[],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **(env or {})},
        cwd="/", capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


@installed
def test_installed_files_user_and_state_directory() -> None:
    """The package installs the command, the unit, a conffile configuration, the docs the
    unit names, the man page and completion; postinst made the user, the state directory and
    a signing key only root and the service can read."""
    for path in (Path("/usr/bin/bounced"), UNIT, CONFIG, DOC / "README.md",
                 DOC / "examples" / "prometheus" / "bounced-alerts.yml",
                 DOC / "examples" / "grafana" / "bounced-dashboard.json",
                 Path("/usr/share/man/man1/bounced.1.gz"),
                 Path("/usr/share/bash-completion/completions/bounced")):
        assert path.is_file(), path
    conffiles = subprocess.run(["dpkg-query", "-W", "-f=${Conffiles}", "bounced"],
                               capture_output=True, text=True, check=True).stdout
    assert str(CONFIG) in conffiles
    docs = [v for v in unit_settings()["Documentation"]]
    assert docs == ["file:///usr/share/doc/bounced/README.md"]
    user = pwd.getpwnam("bounced")
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin")
    assert STATE.is_dir() and STATE.stat().st_uid == user.pw_uid
    assert STATE.stat().st_mode & 0o777 == 0o700
    keys = KEYS.stat()
    assert keys.st_uid == 0 and keys.st_gid == grp.getgrnam("bounced").gr_gid
    assert keys.st_mode & 0o777 == 0o640
    man = subprocess.run(["man", "-l", "/usr/share/man/man1/bounced.1.gz"],
                         capture_output=True, text=True, check=False,
                         env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "100"})
    if man.returncode == 0:  # man-db may be absent; the file was checked above
        assert "bounced serve" in man.stdout


@installed
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_installed_unit_verifies() -> None:
    """systemd-analyze verify passes on the installed unit as it is (its ExecStart, user
    and paths exist); it runs the packaged command as the packaged user."""
    proc = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True,
                          text=True, timeout=60, check=False)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "bounced.service" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr
    settings = unit_settings()
    assert settings["ExecStart"] == ["/usr/bin/bounced serve --config /etc/bounced/bounced.toml"]
    assert settings["User"] == ["bounced"] and settings["StateDirectory"] == ["bounced"]


@pytest.fixture
def packaged_daemon(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """The installed unit's ExecStart, run as its User= with its Environment= and UMask=
    (systemd is not running here); only the ports are moved off the defaults."""
    settings = unit_settings()
    argv = shlex.split(settings["ExecStart"][0])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for assignment in settings.get("Environment", []):
        key, _, value = assignment.partition("=")
        env[key] = value
    smtp_port, http_port = free_port(), free_port()
    env.update(BOUNCED_SMTP_LISTEN=f"127.0.0.1:{smtp_port}",
               BOUNCED_HTTP_LISTEN=f"127.0.0.1:{http_port}")
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, user=settings["User"][0], group=settings["Group"][0],
                                extra_groups=[], umask=int(settings["UMask"][0], 8), env=env,
                                cwd="/", stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            # started: listening, the worker running, SIGTERM handled
            if b'"bounced.started"' in log_path.read_bytes():
                break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield smtp_port, http_port
    finally:
        proc.terminate()
        code = proc.wait(30)
        text = log_path.read_text()
        assert code == 0, text
        assert "Traceback" not in text, text


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.status, resp.read()


def relay_one_bounce(smtp_port: int, address: str, tag: str) -> dict[str, object]:
    """Sign a return path with the installed `bounced sign`, send a DSN for ``address`` to
    the packaged daemon over SMTP, and wait for `bounced status` to show the incident."""
    subject = f"pkg-{os.getpid()}-{tag}"
    rp = as_bounced("sign", "--subject", subject, "--address", address).stdout.strip()
    assert rp.endswith("@bounces.example.org")
    reply = smtp_send(smtp_port, [rp], dsn(address, return_path=rp))
    assert reply["DATA"][0] == 250, reply
    deadline = time.monotonic() + 30
    while True:
        report = json.loads(as_bounced("status", "--subject", subject, "--json").stdout)
        incidents = [i for a in report["addresses"] for i in a["incidents"]]
        if incidents:
            [incident] = incidents
            return dict(incident)
        assert time.monotonic() < deadline, report
        time.sleep(0.2)


@installed
def test_packaged_daemon_relays_one_bounce_to_status_stats_and_dashboard(
        packaged_daemon: tuple[int, int]) -> None:
    """Started as the unit starts it, the packaged daemon takes a bounce for a return path
    that the installed `bounced sign` made, and the installed commands and the HTTP
    interface show it: status, stats, metrics, and the dashboard with every file it loads."""
    smtp_port, http_port = packaged_daemon
    incident = relay_one_bounce(smtp_port, "alice@example.net", "cli")
    assert incident["reason"] == "userunknown" and incident["status"] == "5.1.1"

    status, body = http_get(http_port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, body = http_get(http_port, "/metrics")
    assert b'bounced_messages_accepted_total{via="smtp"} 1.0' in body

    # `bounced stats` and /v1/stats (what the dashboard draws) count it, by reason and domain
    stats = json.loads(as_bounced("stats", "--json").stdout)
    assert stats["incidents"]["total"] >= 1, stats
    assert "userunknown" in [r["reason"] for r in stats["bounces_by_reason"]], stats
    assert "example.net" in [d["domain"] for d in stats["top_domains"]], stats
    status, body = http_get(http_port, "/v1/stats")
    assert status == 200 and json.loads(body)["top_domains"] == stats["top_domains"]
    # the dashboard page and each file it loads, from the installed package's data
    status, page = http_get(http_port, "/dashboard")
    assert status == 200 and b"<title>bounced dashboard</title>" in page
    for name in ("dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css"):
        assert f'"dashboard/{name}"'.encode() in page
        status, body = http_get(http_port, f"/dashboard/{name}")
        assert status == 200 and len(body) > 500, name


@installed
def test_packaged_dashboard_shows_the_bounce_in_headless_chromium(
        packaged_daemon: tuple[int, int]) -> None:
    """The installed daemon's dashboard, in a real browser: it loads without a console
    error and shows the bounce just relayed (its domain in the table, the incident counted)."""
    from .test_dashboard import ARTIFACTS, _browser_missing, browse

    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    smtp_port, http_port = packaged_daemon
    domain = f"pkg{os.getpid()}.example.net"
    relay_one_bounce(smtp_port, f"bob@{domain}", "web")
    shown = browse(f"http://127.0.0.1:{http_port}/dashboard", ARTIFACTS / "dashboard-package.png")
    assert shown["error"] is None and shown["console"] == [], shown
    assert domain in shown["domains"], shown["domains"]
    assert "userunknown" in shown["legend"], shown["legend"]
    recorded = re.search(r"(\d+) recorded", shown["cards"])
    assert recorded is not None and int(recorded[1]) >= 1, shown["cards"]


def test_versions_agree_and_the_changelog_dates_the_release() -> None:
    """`bounced --version`, pyproject, the Debian package and the changelog's latest dated
    release name the same version; unreleased changes stay under "Unreleased"."""
    import tomllib

    from bounced import __version__

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    debian = re.match(r"bounced \(([^)-]+)-\d+\)",
                      (ROOT / "debian" / "changelog").read_text())
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d\d-\d\d)$", changelog, flags=re.M)
    assert debian is not None and releases
    assert __version__ == pyproject == debian.group(1) == releases[0][0]
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{__version__}]")
    assert "purge --limit" not in changelog
