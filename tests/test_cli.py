"""The bounced command as a user runs it: sign, verify, keygen, check-config, status, reconfirm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .helpers import BOUNCED, ROOT, base_env, dsn, free_port, smtp_send


def run(env: dict[str, str], *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_sign_then_verify_round_trip(tmp_path: Path) -> None:
    """`bounced sign` prints a return path that `bounced verify` decodes with exit 0."""
    env = base_env(tmp_path)
    rp = run(env, "sign", "--subject", "4711", "--address", "alice@example.net",
             "--stream", "digest", "--at", "2026-11-20", check=True).stdout.strip()
    assert rp.startswith("bounce-") and rp.endswith("@bounces.example.test")
    out = run(env, "verify", rp, "--at", "2026-11-22", check=True).stdout
    assert "4711" in out and "digest" in out and "2026-11-20" in out and "2 days" in out
    assert "k1" in out


def test_verify_says_why_invalid(tmp_path: Path) -> None:
    """`bounced verify` exits 1 and names the reason for an expired or forged token."""
    env = base_env(tmp_path)
    rp = run(env, "sign", "--subject", "1", "--address", "a@example.net", "--at", "2026-01-01",
             check=True).stdout.strip()
    expired = run(env, "verify", rp, "--at", "2026-11-22")
    assert expired.returncode == 1 and "expired" in expired.stdout
    local, _, domain = rp.partition("@")
    forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    bad = run(env, "verify", forged, "--at", "2026-01-02")
    assert bad.returncode == 1 and "signature" in bad.stdout


def test_keygen_writes_private_key_file_and_refuses_overwrite(tmp_path: Path) -> None:
    """`bounced keygen --out FILE` writes a 0600 key file usable by sign; it will not overwrite."""
    keys = tmp_path / "keys"
    run({}, "keygen", "--out", str(keys), check=True)
    assert keys.stat().st_mode & 0o777 == 0o600
    again = run({}, "keygen", "--out", str(keys))
    assert again.returncode == 1 and "exists" in again.stderr
    env = {**base_env(tmp_path), "BOUNCED_VERP_KEYS_FILE": str(keys)}
    rp = run(env, "sign", "--subject", "1", "--address", "a@example.net", check=True).stdout
    assert run(env, "verify", rp.strip(), check=True).returncode == 0


def test_keys_from_environment_and_credentials(tmp_path: Path) -> None:
    """Keys come from BOUNCED_VERP_KEYS or $CREDENTIALS_DIRECTORY/verp-keys as well."""
    env = base_env(tmp_path)
    key_text = Path(env.pop("BOUNCED_VERP_KEYS_FILE")).read_text()
    rp = run({**env, "BOUNCED_VERP_KEYS": key_text}, "sign", "--subject", "1", "--address",
             "a@example.net", check=True).stdout.strip()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "verp-keys").write_text(key_text)
    out = run({**env, "CREDENTIALS_DIRECTORY": str(creds)}, "verify", rp, check=True)
    assert "subject      1" in out.stdout


def test_check_config_names_the_bad_key(tmp_path: Path) -> None:
    """`bounced check-config` exits 1 naming the bad key, and 0 for a valid file."""
    env = base_env(tmp_path)
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[policy]\nmin_bounce = 3\n")
    bad = run(env, "check-config", "--config", str(cfg))
    assert bad.returncode == 1 and "[policy] min_bounce" in bad.stderr
    good = run(env, "check-config", "--config", str(ROOT / "config" / "bounced.toml"))
    assert good.returncode == 0 and "configuration OK" in good.stdout


def test_check_config_refuses_missing_keys(tmp_path: Path) -> None:
    """`bounced check-config` fails when no signing key is configured for production."""
    env = base_env(tmp_path)
    env.pop("BOUNCED_VERP_KEYS_FILE")
    proc = run(env, "check-config")
    assert proc.returncode == 1 and "no signing key" in proc.stderr


def test_status_and_reconfirm(tmp_path: Path) -> None:
    """status shows the incidents of a subject (table and JSON); reconfirm resets the state."""
    from .helpers import DaemonProcess

    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_LOG_FORMAT="json")
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        for day in ("10", "6", "2"):
            at = __import__("bounced.model").model.utcnow().date() - __import__("datetime").timedelta(
                days=int(day))
            rp = run(env, "sign", "--subject", "77", "--address", "bob@example.net", "--at",
                     at.isoformat(), check=True).stdout.strip()
            assert smtp_send(daemon.port, [rp], dsn("bob@example.net", return_path=rp))[
                "DATA"][0] == 250
    finally:
        daemon.stop()
    run(env, "process", check=True)
    table = run(env, "status", "--subject", "77", check=True).stdout
    assert "UNCONFIRMED" in table and "userunknown" in table and "5.1.1" in table
    data = json.loads(run(env, "status", "--address", "BOB@example.net", "--json",
                          check=True).stdout)
    [addr] = data["addresses"]
    assert addr["state"] == "unconfirmed" and len(addr["incidents"]) == 3
    assert addr["decisions"][0]["action"] == "unconfirm"
    run(env, "reconfirm", "--subject", "77", check=True)
    data = json.loads(run(env, "status", "--subject", "77", "--json", check=True).stdout)
    assert data["addresses"][0]["state"] == "confirmed"
    assert data["addresses"][0]["reconfirmed_at"] is not None
    unknown = run(env, "status", "--subject", "nobody", check=True).stdout
    assert "no incidents" in unknown


def test_too_old_sqlite_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    """On a Python whose SQLite lacks RETURNING (older than 3.35: Debian 11, RHEL 9),
    `bounced migrate` and `bounced serve` say what is missing and exit 1, instead of
    failing in a migration half-way; nothing is created."""
    db = tmp_path / "b.db"
    env = {**os.environ, "BOUNCED_STORE_URL": f"sqlite:///{db}"}
    # the version the sqlite3 module reports, as a Python linked to SQLite 3.31 reports it
    old = ("import sqlite3, sys; sqlite3.sqlite_version_info = (3, 31, 1); "
           "sqlite3.sqlite_version = '3.31.1'; from bounced.cli import main; "
           "sys.exit(main(sys.argv[1:]))")
    for command in ("migrate", "serve"):
        proc = subprocess.run([sys.executable, "-c", old, command], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "SQLite 3.35.0 or newer is needed" in proc.stderr
        assert "3.31.1" in proc.stderr
    assert not db.exists()


def test_output_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    """`bounced queue | head -1` and the like: when the reader has gone, the command stops
    with the shell's status for it (141), and no traceback or "Exception ignored" noise."""
    env = {"BOUNCED_STORE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    run(env, "migrate", check=True)  # `queue` reads an existing store only
    for args in (["queue"], ["classify", str(ROOT / "tests" / "classify" / "general"
                                              / "postfix_virtual_unknown.eml")]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write
        try:
            proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env}, stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                                  cwd=tmp_path)
        finally:
            os.close(write_end)
        assert proc.returncode == 141, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, (
            args, proc.stderr)


def test_numbers_out_of_range_are_usage_errors(tmp_path: Path) -> None:
    """A negative retention (`purge --raw-days -5` would purge every kept body) or a limit
    below one is refused with exit 2 and a message naming the option; nothing is purged."""
    env = {"BOUNCED_STORE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    for args, option in ((["purge", "--raw-days", "-5"], "--raw-days"),
                         (["queue", "--limit", "0"], "--limit"),
                         (["events", "--limit", "x"], "--limit")):
        proc = run(env, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert option in proc.stderr, proc.stderr
    assert not (tmp_path / "b.db").exists()


def mistake(env: dict[str, str], *args: str, code: int = 1) -> str:
    """Run a command a user got wrong: it exits ``code`` and says why in one line (the
    last on stderr; log lines of the daemon may come before it), without a traceback."""
    proc = run(env, *args)
    assert proc.returncode == code, (args, proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines and "Traceback" not in proc.stderr and "Unclosed" not in proc.stderr, (
        args, proc.stderr)
    return lines[-1]


def test_usage_mistakes_are_one_line_with_exit_2(tmp_path: Path) -> None:
    """An unknown command, a missing or malformed argument, a choice that does not exist:
    one line naming the command and what was wrong (and where to read more), exit 2."""
    env = base_env(tmp_path)
    for args, said in (
        (["nosuch"], "bounced: error: argument COMMAND: invalid choice: 'nosuch'"),
        ([], "bounced: error: the following arguments are required: COMMAND"),
        (["sign", "--subject", "1"], "bounced sign: error: the following arguments are required: "
                                     "--address"),
        (["verify", "x", "--at", "2026-13-01"], "bounced verify: error: argument --at: not a date"),
        (["queue", "--state", "stuck"], "bounced queue: error: argument --state: invalid choice"),
        (["status"], "bounced status: error: one of the arguments --subject --address is required"),
        (["breaker", "mend"], "bounced breaker: error: argument action: invalid choice: 'mend'"),
        (["show", "seven"], "bounced show: error: argument ID: invalid int value: 'seven'"),
    ):
        line = mistake(env, *args, code=2)
        assert line.startswith(said) and line.endswith("--help)"), (args, line)
    assert not (tmp_path / "bounced.db").exists()


def test_serve_mistakes_name_the_setting_in_one_line(tmp_path: Path) -> None:
    """`bounced serve` with its port taken, or with a webhook that has no secret, exits 1
    with one line naming the setting, and leaves no aiohttp "Unclosed client session" noise."""
    import socket

    env = base_env(tmp_path, BOUNCED_LOG_FORMAT="json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = mistake({**env, "BOUNCED_HTTP_LISTEN": f"127.0.0.1:{port}"}, "serve")
        assert line == f"bounced serve: [http] listen 127.0.0.1:{port}: Address already in use"
    cfg = tmp_path / "webhook.toml"
    cfg.write_text('[actions.app]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n')
    line = mistake(env, "serve", "--config", str(cfg))
    assert line.startswith("bounced serve: [actions.app]: a webhook needs a secret")
    line = mistake(env, "serve", "--config", str(tmp_path / "missing.toml"))
    assert line.startswith("bounced serve: ") and "missing.toml" in line


def test_command_mistakes_are_one_line_with_exit_1(tmp_path: Path) -> None:
    """A message id that does not exist, a breaker that is not tripped, a key file that
    exists, a file that is not mail: one line, exit 1."""
    env = base_env(tmp_path)
    run(env, "migrate", check=True)  # commands other than serve and migrate create no store
    assert "123" in mistake(env, "show", "123")
    assert run(env, "breaker", "release", "example.net").returncode == 1
    assert "exists" in mistake(env, "keygen", "--out", env["BOUNCED_VERP_KEYS_FILE"])
    not_mail = tmp_path / "notes.txt"
    not_mail.write_text("Dear diary,\nno bounce today.\n")
    assert mistake(env, "classify", str(not_mail)) == (
        f"bounced classify: {not_mail}: not a mail message (it does not start with header "
        "fields); give the raw message, headers included")
    assert "No such file" in mistake(env, "classify", str(tmp_path / "nothing.eml"))


def test_events_say_why_nothing_was_delivered(tmp_path: Path) -> None:
    """With no action configured, `bounced events` says so instead of "(not yet fanned
    out)" forever; an event type no action takes says that."""
    from .helpers import DaemonProcess

    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_LOG_FORMAT="json")
    daemon = DaemonProcess(env, tmp_path / "daemon.log")
    daemon.start()
    try:
        rp = run(env, "sign", "--subject", "9", "--address", "c@example.net",
                 check=True).stdout.strip()
        not_a_bounce = f"From: c@example.net\r\nTo: {rp}\r\nSubject: hi\r\n\r\nthanks\r\n"
        assert smtp_send(daemon.port, [rp], not_a_bounce.encode())["DATA"][0] == 250
    finally:
        daemon.stop()
    run(env, "process", check=True)
    table = run(env, "events", check=True).stdout
    assert "bounce.unrecognised" in table and "(no action configured)" in table, table
    cfg = tmp_path / "alerts-only.toml"
    cfg.write_text('[actions.pager]\ntype = "log"\nevents = ["breaker.tripped"]\n')
    table = run(env, "events", "--config", str(cfg), check=True).stdout
    assert "(no action takes this type)" in table, table
