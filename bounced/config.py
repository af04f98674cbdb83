"""Settings: TOML file + ``BOUNCED_<SECTION>_<KEY>`` environment, validated once, frozen.

No other module reads the configuration or the environment; settings are passed in.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounced.exceptions import ConfigError

DEFAULT_COUNTING_REASONS = (
    "userunknown",
    "hostunknown",
    "hasmoved",
    "notaccept",
    "suspend",
    "mailboxfull",
)


# Environment variables that carry secrets rather than settings (never in the TOML file).
KEYS_ENV = "BOUNCED_VERP_KEYS"
SECRET_ENV = frozenset({KEYS_ENV})


@dataclass(frozen=True)
class SMTPSettings:
    listen: str = "127.0.0.1:2525"
    hostname: str = "bounced.localhost"
    relay_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    max_message_size: int = 10 * 1024 * 1024
    max_recipients: int = 50
    idle_timeout: float = 300.0
    max_connections: int = 100
    shutdown_grace: float = 30.0


@dataclass(frozen=True)
class StoreSettings:
    # Empty means "bounced.db in the state directory".
    url: str = ""
    state_dir: str = ""


@dataclass(frozen=True)
class VerpSettings:
    domain: str = "bounces.example.org"
    prefix: str = "bounce"
    keys_file: str = ""
    max_age_days: int = 21
    future_skew_days: int = 1


@dataclass(frozen=True)
class PolicySettings:
    min_bounces: int = 3
    min_span_days: int = 7
    window_days: int = 60
    counting_reasons: tuple[str, ...] = DEFAULT_COUNTING_REASONS


@dataclass(frozen=True)
class WorkerSettings:
    enabled: bool = True
    batch_size: int = 20
    poll_interval: float = 1.0
    lease_seconds: float = 300.0
    max_attempts: int = 5
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0


@dataclass(frozen=True)
class RetentionSettings:
    # Raw messages of processed jobs are dropped after this many days (parsed facts stay).
    raw_days: int = 30
    # Incidents older than the policy window are dropped too. Seconds between purges:
    interval_seconds: float = 3600.0


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    # auto: console on a terminal, JSON otherwise.
    format: str = "auto"


@dataclass(frozen=True)
class Settings:
    smtp: SMTPSettings = field(default_factory=SMTPSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    verp: VerpSettings = field(default_factory=VerpSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def state_dir(self) -> Path:
        return Path(self.store.state_dir)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.state_dir / 'bounced.db'}"


_SECTION_TYPES = typing.get_type_hints(Settings)


def _coerce(where: str, hint: Any, value: Any, *, from_env: bool) -> Any:
    """Turn a TOML or environment value into the field's type, or say what is wrong."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if from_env and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if from_env and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if from_env and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover


def _build_section(name: str, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    cls = _SECTION_TYPES[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            known_list = ", ".join(sorted(known))
            raise ConfigError(f"[{name}] {key}: unknown setting (known: {known_list})")
    kwargs: dict[str, Any] = {}
    for key in known:
        env_name = f"BOUNCED_{name.upper()}_{key.upper()}"
        if env_name in env:
            kwargs[key] = _coerce(env_name, hints[key], env[env_name], from_env=True)
        elif key in values:
            kwargs[key] = _coerce(f"[{name}] {key}", hints[key], values[key], from_env=False)
    return cls(**kwargs)


def _validate(settings: Settings) -> None:
    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{where}: {what}")

    parse_listen(settings.smtp.listen, "[smtp] listen")
    for net in settings.smtp.relay_networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"[smtp] relay_networks: not a network: {net!r}") from None
    need(settings.smtp.max_message_size > 0, "[smtp] max_message_size", "must be positive")
    need(settings.smtp.max_recipients > 0, "[smtp] max_recipients", "must be positive")
    need(settings.smtp.idle_timeout > 0, "[smtp] idle_timeout", "must be positive")
    need(settings.smtp.max_connections > 0, "[smtp] max_connections", "must be positive")
    url = settings.store_url
    need(
        url.startswith(("sqlite:///", "postgresql://", "postgres://")),
        "[store] url",
        f"must start with sqlite:/// or postgresql://, got {url!r}",
    )
    need("@" not in settings.verp.domain and "." in settings.verp.domain,
         "[verp] domain", f"not a domain name: {settings.verp.domain!r}")
    need(re.fullmatch(r"[a-z0-9][a-z0-9-]*", settings.verp.prefix) is not None,
         "[verp] prefix", "lowercase ASCII letters, digits and '-' only")
    need(settings.verp.max_age_days > 0, "[verp] max_age_days", "must be positive")
    need(settings.verp.future_skew_days >= 0, "[verp] future_skew_days", "must not be negative")
    need(settings.policy.min_bounces >= 1, "[policy] min_bounces", "must be at least 1")
    need(settings.policy.min_span_days >= 0, "[policy] min_span_days", "must not be negative")
    need(settings.policy.window_days >= 1, "[policy] window_days", "must be at least 1")
    need(settings.policy.window_days > settings.policy.min_span_days,
         "[policy] window_days", "must be longer than min_span_days")
    need(settings.worker.batch_size >= 1, "[worker] batch_size", "must be at least 1")
    need(settings.worker.max_attempts >= 1, "[worker] max_attempts", "must be at least 1")
    need(settings.retention.raw_days >= 1, "[retention] raw_days", "must be at least 1")
    need(settings.retention.interval_seconds > 0, "[retention] interval_seconds",
         "must be positive")
    need(settings.log.level.lower() in ("debug", "info", "warning", "error"),
         "[log] level", "one of debug, info, warning, error")
    need(settings.log.format in ("auto", "console", "json"),
         "[log] format", "one of auto, console, json")


def parse_listen(value: str, where: str = "listen") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to a (host, port) pair."""
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}: expected HOST:PORT, got {value!r}")
    return host, int(port_text)


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read the TOML file (optional), apply the environment, validate, return frozen settings."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    for section, values in data.items():
        if section not in _SECTION_TYPES:
            raise ConfigError(f"[{section}]: unknown section (known: {', '.join(_SECTION_TYPES)})")
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: must be a [section] table")
    for name in env:
        if name in SECRET_ENV:
            continue
        if name.startswith("BOUNCED_") and name.count("_") >= 2:
            section = name.split("_")[1].lower()
            if section in _SECTION_TYPES:
                key = name[len("BOUNCED_") + len(section) + 1 :].lower()
                hints = typing.get_type_hints(_SECTION_TYPES[section])
                if key not in hints:
                    raise ConfigError(f"{name}: unknown setting [{section}] {key}")
    sections = {name: _build_section(name, data.get(name, {}), env) for name in _SECTION_TYPES}
    store = sections["store"]
    if not store.state_dir:
        state = env.get("STATE_DIRECTORY", "").split(":")[0] or "state"
        sections["store"] = dataclasses.replace(store, state_dir=state)
    settings = Settings(**sections)
    _validate(settings)
    return settings


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (SQLAlchemy's convention)."""
    return Path(url.removeprefix("sqlite:///"))


__all__ = [
    "LogSettings",
    "PolicySettings",
    "RetentionSettings",
    "SMTPSettings",
    "Settings",
    "StoreSettings",
    "VerpSettings",
    "WorkerSettings",
    "load_settings",
    "parse_listen",
    "sqlite_path",
]
