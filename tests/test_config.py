"""Settings from TOML and the environment, and the errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounced.config import load_settings
from bounced.exceptions import ConfigError

from .helpers import ROOT


def test_example_config_is_complete_and_valid() -> None:
    """config/bounced.toml loads and sets every setting bounced has, at its default."""
    settings = load_settings(ROOT / "config" / "bounced.toml", env={})
    assert settings == load_settings(None, env={})
    text = (ROOT / "config" / "bounced.toml").read_text()
    for section in settings.__dataclass_fields__:
        if section == "actions":
            assert "\n# [actions.app]\n" in text
            continue
        assert f"\n[{section}]\n" in text, f"[{section}] missing from the example"
        for key in getattr(settings, section).__dataclass_fields__:
            assert f"\n{key} = " in text, f"[{section}] {key} missing from the example"


def test_environment_overrides_file(tmp_path: Path) -> None:
    """BOUNCED_<SECTION>_<KEY> overrides the file, with the setting's type."""
    cfg = tmp_path / "b.toml"
    cfg.write_text('[smtp]\nlisten = "127.0.0.1:2500"\n[policy]\nmin_bounces = 5\n')
    s = load_settings(cfg, env={
        "BOUNCED_SMTP_LISTEN": "127.0.0.1:2600", "BOUNCED_STORE_URL": "sqlite:///var/x.db",
        "BOUNCED_POLICY_WINDOW_DAYS": "90", "BOUNCED_WORKER_ENABLED": "no",
        "BOUNCED_SMTP_RELAY_NETWORKS": "127.0.0.0/8, 10.0.0.0/8",
    })
    assert s.smtp.listen == "127.0.0.1:2600"
    assert s.store_url == "sqlite:///var/x.db"
    assert (s.policy.min_bounces, s.policy.window_days) == (5, 90)
    assert s.worker.enabled is False
    assert s.smtp.relay_networks == ("127.0.0.0/8", "10.0.0.0/8")


@pytest.mark.parametrize(("toml", "env", "named"), [
    ("[smtp]\nlisen = 1\n", {}, "[smtp] lisen"),
    ("[smpt]\n", {}, "[smpt]"),
    ('[policy]\nmin_bounces = "three"\n', {}, "[policy] min_bounces"),
    ("", {"BOUNCED_POLICY_MIN_BOUNCES": "three"}, "BOUNCED_POLICY_MIN_BOUNCES"),
    ("", {"BOUNCED_SMTP_LISTN": "x"}, "BOUNCED_SMTP_LISTN"),
    ('[smtp]\nlisten = "nowhere"\n', {}, "[smtp] listen"),
    ('[store]\nurl = "mysql://x"\n', {}, "[store] url"),
    ('[smtp]\nrelay_networks = ["300.1.1.1/8"]\n', {}, "[smtp] relay_networks"),
    ("[policy]\nwindow_days = 5\n", {}, "[policy] window_days"),
    ("[limits]\npeer_bytes_per_minute = 1000\n", {}, "[limits] peer_bytes_per_minute"),
    ("[limits]\nin_flight_bytes = 1000\n", {}, "[limits] in_flight_bytes"),
    ("this is not toml", {}, "not valid TOML"),
])
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, env: dict[str, str],
                                   named: str) -> None:
    """Each invalid setting raises ConfigError naming the offending key."""
    cfg = tmp_path / "b.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        load_settings(cfg, env=env)


def test_state_directory_from_systemd() -> None:
    """Without a store URL the database goes into systemd's $STATE_DIRECTORY."""
    s = load_settings(None, env={"STATE_DIRECTORY": "/var/lib/bounced"})
    assert s.store_url == "sqlite:////var/lib/bounced/bounced.db"
