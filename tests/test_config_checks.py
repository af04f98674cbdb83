"""Keys, stores and configuration: only `serve` makes a development key, read commands never
create a store, one default configuration path, misspelt variables named, check-config as
strict as serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounced.classify.codes import STATUS_REASONS
from bounced.config import REASONS, config_path

from .cmdline import ATTACKER, run, sign
from .helpers import (
    ROOT,
    base_env,
    dsn,
    free_port,
)

# --- only `serve` makes a development key ---------------------------------------------


def test_deliver_without_keys_exits_75_and_makes_no_key(tmp_path: Path) -> None:
    """`bounced deliver` with no key configured (the pipe cannot read the daemon's systemd
    credential) exits 75, so the mail server keeps the bounce, and generates no key; `sign`
    and `verify` fail with one clear line and generate none either."""
    keyed = base_env(tmp_path)
    assert run(keyed, "migrate").returncode == 0
    rp = sign(keyed, "1", ATTACKER, 1)
    env = {k: v for k, v in keyed.items() if k != "BOUNCED_VERP_KEYS_FILE"}
    proc = run(env, "deliver", rp, data=dsn(ATTACKER, return_path=rp))
    assert proc.returncode == 75, proc.stderr
    assert b"no signing key" in proc.stderr
    for args in (["sign", "--subject", "1", "--address", ATTACKER], ["verify", rp]):
        other = run(env, *args)
        assert other.returncode == 1 and "no signing key" in other.stderr, other.stderr
        assert len(other.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "state").exists()


# --- read commands open an existing store or fail clearly ---------------


def test_read_commands_never_create_a_store(tmp_path: Path) -> None:
    """`status`, `queue`, `show`, `events` and `breaker list` with a mistyped SQLite path, or
    run from another directory on the defaults, exit non-zero naming the path, and create no
    database (main answered "no incidents recorded; confirmed" from a new empty one)."""
    env = base_env(tmp_path, BOUNCED_STORE_URL=f"sqlite:///{tmp_path / 'bouncd.db'}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    defaults = {k: v for k, v in env.items()
                if k not in ("BOUNCED_STORE_URL", "BOUNCED_STORE_STATE_DIR")}
    for args in (["status", "--subject", "4711"], ["queue"], ["show", "1"], ["events"],
                 ["breaker", "list"]):
        for e, cwd in ((env, None), (defaults, elsewhere)):
            proc = run(e, *args, cwd=cwd)
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
            assert "no bounced store at" in proc.stderr and "bounced migrate" in proc.stderr
            assert "confirmed" not in proc.stdout
    assert not (tmp_path / "bouncd.db").exists()
    assert list(elsewhere.iterdir()) == []


def test_one_default_configuration_path(tmp_path: Path) -> None:
    """Every command reads $BOUNCED_CONFIG, else /etc/bounced/bounced.toml when it exists,
    else the built-in defaults; set but empty, $BOUNCED_CONFIG means the built-in defaults.
    A shell with the service's configuration reads its store from any directory."""
    here = str(ROOT / "config" / "bounced.toml")
    assert config_path({}, default=here) == here
    assert config_path({}, default="/nonexistent/bounced.toml") is None
    assert config_path({"BOUNCED_CONFIG": "/srv/b.toml"}, default=here) == "/srv/b.toml"
    assert config_path({"BOUNCED_CONFIG": ""}, default=here) is None
    db = tmp_path / "service.db"
    config = tmp_path / "bounced.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{db}"\n')
    env = {"BOUNCED_CONFIG": str(config)}
    assert run(env, "migrate").returncode == 0
    proc = run(env, "queue", cwd=tmp_path.parent)
    assert proc.returncode == 0 and "pending" in proc.stdout, proc.stderr


def test_misspelt_environment_variable_is_named(tmp_path: Path) -> None:
    """A `BOUNCED_*` variable bounced does not read gets a warning naming the nearest one it
    reads (it was ignored silently); a misspelt key of a known section is an error."""
    env = base_env(tmp_path)
    assert run(env, "migrate").returncode == 0
    proc = run({**env, "BOUNCED_SMPT_LISTEN": "127.0.0.1:2600"}, "queue")
    assert proc.returncode == 0
    assert "BOUNCED_SMPT_LISTEN" in proc.stderr and "BOUNCED_SMTP_LISTEN" in proc.stderr
    bad = run({**env, "BOUNCED_STORE_ULR": "sqlite:///x.db"}, "queue")
    assert bad.returncode == 1 and "did you mean BOUNCED_STORE_URL?" in bad.stderr


# --- check-config runs every check serve runs -------------------------------------


BAD_CONFIGS = {
    "webhook without a secret": (
        '[actions.app]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n',
        "a webhook needs a secret"),
    "missing secret_file": (
        '[actions.app]\ntype = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        'secret_file = "/nonexistent/secret"\n', "secret_file"),
    "counting_reasons typo": (
        '[policy]\ncounting_reasons = ["userunknow"]\n', "did you mean 'userunknown'"),
    "command that does not exist": (
        '[actions.app]\ntype = "command"\ncommand = ["/nonexistent/unconfirm"]\n',
        "no such executable file"),
    "command not in PATH": (
        '[actions.app]\ntype = "command"\ncommand = ["bounced-no-such-program"]\n',
        "not found in PATH"),
    "missing http token_file": (
        '[http]\ntoken_file = "/nonexistent/token"\n', "[http] token_file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_check_config_refuses_what_serve_refuses(tmp_path: Path, case: str) -> None:
    """For each configuration `serve` refuses before it binds, `check-config` exits 1 with
    the same one-line message (main passed all of these)."""
    text, message = BAD_CONFIGS[case]
    config = tmp_path / "bounced.toml"
    config.write_text(text)
    env = base_env(tmp_path, BOUNCED_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
                   BOUNCED_CONFIG=str(config))
    checked = run(env, "check-config")
    assert checked.returncode == 1 and message in checked.stderr, checked.stderr
    served = run(env, "serve")
    assert served.returncode == 1 and message in served.stderr, served.stderr
    assert checked.stderr.strip() == served.stderr.strip().replace("serve", "check-config", 1)


def test_check_config_refuses_the_development_key(tmp_path: Path) -> None:
    """`check-config` refuses a development key `serve` generated earlier, as the docs say
    (main accepted it once it existed); `sign` may still use it (the quick start)."""
    env = {k: v for k, v in base_env(tmp_path).items() if k != "BOUNCED_VERP_KEYS_FILE"}
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dev-keys").write_text(
        "k1 c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzISE=\n")
    proc = run(env, "check-config")
    assert proc.returncode == 1 and "development key" in proc.stderr, proc.stderr
    assert run(env, "sign", "--subject", "1", "--address", ATTACKER).returncode == 0


def test_check_config_reports_the_store_without_creating_it(tmp_path: Path,
                                                           pg_database: str) -> None:
    """`check-config` opens the store as serve would, but creates nothing: a SQLite file not
    there yet and an empty PostgreSQL database are reported as such (exit 0) and stay as
    they were; a store directory bounced could not create fails it."""
    env = base_env(tmp_path)
    proc = run(env, "check-config")
    assert proc.returncode == 0 and "not created yet" in proc.stdout, proc.stderr
    assert not (tmp_path / "bounced.db").exists()
    proc = run({**env, "BOUNCED_STORE_URL": pg_database}, "check-config")
    assert proc.returncode == 0 and "no schema yet" in proc.stdout, proc.stderr
    assert run({**env, "BOUNCED_STORE_URL": pg_database}, "queue").returncode == 1
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = run({**env, "BOUNCED_STORE_URL": f"sqlite:///{blocker}/sub/b.db"}, "check-config")
    assert proc.returncode == 1 and "[store] url" in proc.stderr, proc.stderr


def test_every_reason_the_classifier_gives_may_be_counted() -> None:
    """The vocabulary counting_reasons is checked against holds every reason of the status
    code table (a reason missing there would be refused as a typo)."""
    assert set(STATUS_REASONS.values()) <= set(REASONS)
