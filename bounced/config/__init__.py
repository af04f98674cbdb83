"""Settings: TOML file + ``BOUNCED_<SECTION>_<KEY>`` environment, validated once, frozen.

No other module reads the configuration or the environment; settings are passed in.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounced.classify.registry import DEFAULT_COUNTING, FAILURES
from bounced.exceptions import ConfigError

# The reasons that count by default, and every reason the classifier gives a failed
# recipient (what [policy] counting_reasons may list: a reason not in it would never count,
# a typo): the classifier's registry of reasons says which.
DEFAULT_COUNTING_REASONS = DEFAULT_COUNTING
REASONS = FAILURES


# Environment variables that carry secrets rather than settings (never in the TOML file).
KEYS_ENV = "BOUNCED_VERP_KEYS"
HTTP_TOKEN_ENV = "BOUNCED_HTTP_TOKEN"  # noqa: S105 - the variable's name, not a secret
SECRET_ENV = frozenset({KEYS_ENV, HTTP_TOKEN_ENV})
# The configuration file every command reads: $BOUNCED_CONFIG (set but empty: none, the
# built-in defaults), else DEFAULT_CONFIG_PATH when it exists, else the built-in defaults.
# So a shell on the host reads what the service reads.
CONFIG_ENV = "BOUNCED_CONFIG"
DEFAULT_CONFIG_PATH = "/etc/bounced/bounced.toml"
# Set by bounced for its command actions (a command may run bounced in turn).
EVENT_ENV = frozenset({"BOUNCED_EVENT_ID", "BOUNCED_EVENT_TYPE"})
# The test suite's own variables (BOUNCED_TEST_PG, ...), not settings.
TEST_ENV_PREFIX = "BOUNCED_TEST_"
ACTION_TYPES = ("webhook", "command", "log", "syslog")
# Syslog facilities by name (RFC 5424's codes), for [actions.NAME] facility.
SYSLOG_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{n}": 16 + n for n in range(8)},
}
EVENT_TYPES = (
    "address.unconfirmed",
    "address.reconfirmed",
    "complaint.received",
    "bounce.unrecognised",
    "breaker.tripped",
    "breaker.released",
)


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
class LimitsSettings:
    # Bytes of messages stored per minute from one client address (SMTP peer, HTTP client) and
    # in all (per daemon); a minute's worth may come at once. Beyond them SMTP answers 452 (one
    # client) or 451 (all), HTTP 429 or 503, and the sender retries later. 0 turns one off.
    peer_bytes_per_minute: int = 50 * 1024 * 1024
    total_bytes_per_minute: int = 200 * 1024 * 1024
    # Bytes of messages being received (SMTP DATA, HTTP ingest) and not yet stored, across all
    # sessions: what the daemon holds in memory for them. A DATA that would go beyond it is
    # answered 452 4.3.1 (HTTP 503) and stores nothing; the sender retries later. 0: no limit.
    in_flight_bytes: int = 128 * 1024 * 1024


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
    # Run the worker in a process of its own, started and watched by `bounced serve` (still
    # one daemon and one unit; it gives classification a CPU core of its own).
    own_process: bool = True
    batch_size: int = 20
    poll_interval: float = 1.0
    lease_seconds: float = 300.0
    max_attempts: int = 5
    retry_base_seconds: float = 10.0
    retry_max_seconds: float = 3600.0
    # A message whose classification takes longer is quarantined with that reason (never
    # retried): one message cannot hold the worker. Wall-clock seconds.
    classify_budget_seconds: float = 5.0


@dataclass(frozen=True)
class RetentionSettings:
    # Raw messages of processed jobs are dropped after this many days (parsed facts stay).
    raw_days: int = 30
    # Incidents older than the policy window are dropped too. Seconds between purges:
    interval_seconds: float = 3600.0


@dataclass(frozen=True)
class OutboxSettings:
    # Record decisions and events, run no action (for trying bounced out on real traffic).
    dry_run: bool = False
    poll_interval: float = 1.0
    lease_seconds: float = 120.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    # An event not delivered within this many hours goes to the dead-letter state.
    max_age_hours: float = 72.0
    # Deliveries in flight at once per action (each action has its own: a hanging one holds
    # back no other).
    concurrency: int = 8


@dataclass(frozen=True)
class BreakerSettings:
    enabled: bool = True
    # Trip when counting bounces for one receiving domain reach this many distinct addresses
    min_addresses: int = 20
    # within this many minutes.
    window_minutes: float = 60.0


@dataclass(frozen=True)
class HTTPSettings:
    enabled: bool = True
    listen: str = "127.0.0.1:8025"
    # Bearer token for the write endpoints; or $BOUNCED_HTTP_TOKEN, or credential http-token.
    token_file: str = ""
    # Open connections; more get 503 and are closed at once.
    max_connections: int = 100
    # Seconds a connection may stay open without a request under way (keep-alive included),
    idle_timeout: float = 30.0
    # from a request's first byte to its complete headers,
    header_timeout: float = 10.0
    # and from its complete headers to the answer (the body read, stored, answered).
    body_timeout: float = 60.0


@dataclass(frozen=True)
class ActionSettings:
    """One ``[actions.NAME]`` table."""

    name: str
    type: str
    url: str = ""
    secret_file: str = ""
    command: tuple[str, ...] = ()
    # Variables of the daemon's environment a command also gets (it gets PATH, HOME, the
    # locale and TZ only: never the store URL, keys or tokens unless named here).
    pass_env: tuple[str, ...] = ()
    timeout: float = 10.0
    events: tuple[str, ...] = EVENT_TYPES
    # syslog: where to send (a Unix datagram socket's path, or udp://HOST:PORT) and as which
    # facility.
    address: str = "/dev/log"
    facility: str = "user"


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    # auto: console on a terminal, JSON otherwise.
    format: str = "auto"


@dataclass(frozen=True)
class Settings:
    smtp: SMTPSettings = field(default_factory=SMTPSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    verp: VerpSettings = field(default_factory=VerpSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    actions: tuple[ActionSettings, ...] = ()
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def state_dir(self) -> Path:
        return Path(self.store.state_dir)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.state_dir / 'bounced.db'}"


_SECTION_TYPES = {k: v for k, v in typing.get_type_hints(Settings).items() if k != "actions"}


def _to_bool(where: str, value: Any, from_env: bool) -> bool:
    if from_env and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _to_number(kind: type[int] | type[float], what: str) -> Any:
    """A coercer to int or float (a bool is neither, though Python makes it an int)."""
    accepted = int if kind is int else int | float

    def coerce(where: str, value: Any, from_env: bool) -> Any:
        if from_env and isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected {what}, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ConfigError(f"{where}: expected {what}, got {value!r}")
        return kind(value)
    return coerce


def _to_str(where: str, value: Any, from_env: bool) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _to_strings(where: str, value: Any, from_env: bool) -> tuple[str, ...]:
    if from_env and isinstance(value, str):  # BOUNCED_X_Y=a,b,c
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


# The settings' field types and how a TOML or environment value becomes one of them.
_COERCERS: dict[Any, Any] = {
    bool: _to_bool, int: _to_number(int, "an integer"), float: _to_number(float, "a number"),
    str: _to_str, tuple: _to_strings,
}


def _coerce(where: str, hint: Any, value: Any, *, from_env: bool) -> Any:
    """Turn a TOML or environment value into the field's type, or say what is wrong."""
    coerce = _COERCERS.get(typing.get_origin(hint) or hint)
    if coerce is None:  # pragma: no cover - every field's type has a coercer
        raise ConfigError(f"{where}: unsupported setting type {hint!r}")
    return coerce(where, value, from_env)


def _env_text(name: str, value: str) -> str:
    """A variable's value, which must be UTF-8: undecodable bytes reach Python as surrogates,
    which ended in tracebacks far away (a listen address at bind, a store URL in asyncpg) or
    in return paths printed with a broken domain."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{name}: not UTF-8 text: {value!r}") from None
    return value


def _build_section(name: str, values: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    cls = _SECTION_TYPES[name]
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            known_list = ", ".join(sorted(known))
            close = difflib.get_close_matches(key, known, n=1)
            raise ConfigError(f"[{name}] {key}: unknown setting" + (
                f" (did you mean {close[0]!r}?)" if close else f" (known: {known_list})"))
    kwargs: dict[str, Any] = {}
    for key in known:
        env_name = f"BOUNCED_{name.upper()}_{key.upper()}"
        if env_name in env:
            kwargs[key] = _coerce(env_name, hints[key], _env_text(env_name, env[env_name]),
                                  from_env=True)
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
    for key in ("peer_bytes_per_minute", "total_bytes_per_minute", "in_flight_bytes"):
        value = getattr(settings.limits, key)
        # Less than one message of the largest size would refuse such a message for ever.
        need(value == 0 or value >= settings.smtp.max_message_size, f"[limits] {key}",
             f"0 (off) or at least [smtp] max_message_size ({settings.smtp.max_message_size})")
    url = settings.store_url
    need(
        url.startswith(("sqlite:///", "postgresql://", "postgres://")),
        "[store] url",
        f"must start with sqlite:/// or postgresql://, got {url!r}",
    )
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 (it raises for a port out of range)
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        raise ConfigError(f"[store] url: {exc}: {redact(url)}") from None
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
    for reason in settings.policy.counting_reasons:
        if reason not in REASONS:
            close = difflib.get_close_matches(reason, REASONS, n=1)
            raise ConfigError(f"[policy] counting_reasons: unknown reason {reason!r}"
                              + (f" (did you mean {close[0]!r}?)" if close else
                                 f" (known: {', '.join(REASONS)})"))
    need(settings.worker.batch_size >= 1, "[worker] batch_size", "must be at least 1")
    need(settings.worker.max_attempts >= 1, "[worker] max_attempts", "must be at least 1")
    need(0 < settings.worker.classify_budget_seconds < settings.worker.lease_seconds,
         "[worker] classify_budget_seconds",
         f"must be positive and shorter than lease_seconds ({settings.worker.lease_seconds:g})")
    need(settings.retention.raw_days >= 1, "[retention] raw_days", "must be at least 1")
    need(settings.retention.interval_seconds > 0, "[retention] interval_seconds",
         "must be positive")
    if settings.http.enabled:
        parse_listen(settings.http.listen, "[http] listen")
    need(settings.http.max_connections > 0, "[http] max_connections", "must be positive")
    for key in ("idle_timeout", "header_timeout", "body_timeout"):
        need(getattr(settings.http, key) > 0, f"[http] {key}", "must be positive")
    need(settings.breaker.min_addresses >= 2, "[breaker] min_addresses", "must be at least 2")
    need(settings.breaker.window_minutes > 0, "[breaker] window_minutes", "must be positive")
    need(settings.outbox.max_age_hours > 0, "[outbox] max_age_hours", "must be positive")
    need(settings.outbox.concurrency >= 1, "[outbox] concurrency", "must be at least 1")
    for action in settings.actions:
        # A delivery still running when its claim expires would be taken by another dispatcher.
        need(action.timeout < settings.outbox.lease_seconds, f"[actions.{action.name}] timeout",
             f"must be shorter than [outbox] lease_seconds ({settings.outbox.lease_seconds:g})")
    need(settings.log.level.lower() in ("debug", "info", "warning", "error"),
         "[log] level", "one of debug, info, warning, error")
    need(settings.log.format in ("auto", "console", "json"),
         "[log] format", "one of auto, console, json")


def _build_actions(tables: Any) -> tuple[ActionSettings, ...]:
    if not isinstance(tables, dict):
        raise ConfigError("[actions]: expected [actions.NAME] tables")
    hints = typing.get_type_hints(ActionSettings)
    known = set(hints) - {"name"}
    result = []
    for name, values in tables.items():
        where = f"[actions.{name}]"
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: must be a table")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
            raise ConfigError(f"{where}: name: letters, digits, '-' and '_' only")
        for key in values:
            if key not in known:
                raise ConfigError(f"{where} {key}: unknown setting (known: "
                                  f"{', '.join(sorted(known))})")
        kwargs = {k: _coerce(f"{where} {k}", hints[k], v, from_env=False)
                  for k, v in values.items()}
        action = ActionSettings(name=name, **kwargs)
        if action.type not in ACTION_TYPES:
            raise ConfigError(f"{where} type: one of {', '.join(ACTION_TYPES)}")
        if action.type == "webhook" and not action.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where} url: an http:// or https:// URL is required")
        if action.type == "command" and not action.command:
            raise ConfigError(f"{where} command: a list [program, args...] is required")
        if action.type == "syslog":
            _check_syslog(where, action)
        if action.timeout <= 0:
            raise ConfigError(f"{where} timeout: must be positive")
        for event in action.events:
            if event not in EVENT_TYPES:
                raise ConfigError(f"{where} events: unknown event {event!r}")
        result.append(action)
    return tuple(result)


def _check_syslog(where: str, action: ActionSettings) -> None:
    if action.facility not in SYSLOG_FACILITIES:
        raise ConfigError(f"{where} facility: one of {', '.join(SYSLOG_FACILITIES)}")
    if action.address.startswith("udp://"):
        parse_listen(action.address.removeprefix("udp://"), f"{where} address")
    elif not action.address.startswith("/"):
        raise ConfigError(f"{where} address: a socket path (/dev/log) or udp://HOST:PORT, got "
                          f"{action.address!r}")


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
        except UnicodeDecodeError as exc:  # TOML is UTF-8 (a Latin-1 file, a binary)
            raise ConfigError(f"{path}: not valid TOML: not UTF-8 text (byte "
                              f"{exc.object[exc.start]:#04x} at offset {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    for section, values in data.items():
        if section == "actions":
            continue
        if section not in _SECTION_TYPES:
            close = difflib.get_close_matches(section, [*_SECTION_TYPES, "actions"], n=1)
            raise ConfigError(f"[{section}]: unknown section" + (
                f" (did you mean [{close[0]}]?)" if close else
                f" (known: {', '.join(_SECTION_TYPES)}, actions.NAME)"))
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
                    raise ConfigError(f"{name}: unknown setting [{section}] {key}"
                                      + _did_you_mean(name, [*setting_env_names(),
                                                             *SECRET_ENV]))
    sections = {name: _build_section(name, data.get(name, {}), env) for name in _SECTION_TYPES}
    store = sections["store"]
    if not store.state_dir:
        state = env.get("STATE_DIRECTORY", "").split(":")[0] or "state"
        sections["store"] = dataclasses.replace(store, state_dir=state)
    settings = Settings(**sections, actions=_build_actions(data.get("actions", {})))
    _validate(settings)
    return settings


def config_path(env: Mapping[str, str] | None = None,
                default: str = DEFAULT_CONFIG_PATH) -> str | None:
    """The configuration file to read when none is named on the command line: $BOUNCED_CONFIG
    (empty: none), else ``default`` when it exists, else None (the built-in defaults)."""
    env = os.environ if env is None else env
    if CONFIG_ENV in env:
        return env[CONFIG_ENV] or None
    return default if Path(default).exists() else None


def setting_env_names() -> list[str]:
    """Every ``BOUNCED_<SECTION>_<KEY>`` variable that sets a setting."""
    return [f"BOUNCED_{section.upper()}_{key.upper()}"
            for section, cls in _SECTION_TYPES.items()
            for key in typing.get_type_hints(cls)]


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def env_warnings(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """One line for each ``BOUNCED_*`` variable that bounced does not read (a misspelt one is
    otherwise ignored silently), naming the nearest one it reads. A misspelt key of a known
    section is an error already (load_settings)."""
    env = os.environ if env is None else env
    secrets = {f"BOUNCED_ACTION_{a.name.upper().replace('-', '_')}_SECRET"
               for a in settings.actions if a.type == "webhook"}
    known = [*setting_env_names(), *SECRET_ENV, CONFIG_ENV, *EVENT_ENV, *secrets]
    warnings = []
    for name in sorted(env):
        if not name.startswith("BOUNCED_") or name.startswith(TEST_ENV_PREFIX) or name in known:
            continue
        if name.startswith("BOUNCED_ACTION_") and name.endswith("_SECRET"):
            warnings.append(f"{name}: no webhook action [actions.NAME] of that name is "
                            f"configured; ignored{_did_you_mean(name, sorted(secrets))}")
        else:
            warnings.append(f"{name}: not a bounced setting; ignored"
                            f"{_did_you_mean(name, known)}")
    return warnings


def redact(url: str) -> str:
    """A store URL without its password (for logs and messages)."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def sqlite_path(url: str) -> Path:
    """``sqlite:///relative.db`` or ``sqlite:////abs/path.db`` (SQLAlchemy's convention)."""
    return Path(url.removeprefix("sqlite:///"))


__all__ = [
    "LimitsSettings",
    "LogSettings",
    "PolicySettings",
    "RetentionSettings",
    "SMTPSettings",
    "Settings",
    "StoreSettings",
    "VerpSettings",
    "WorkerSettings",
    "config_path",
    "env_warnings",
    "load_settings",
    "parse_listen",
    "sqlite_path",
]
