"""Every private API of a library that bounced relies on, in this one module.

Each is here because no public API does the job (said beside it); where one does, the code
uses that instead (aiohttp's bound addresses: ``AppRunner.addresses``; asyncio's server:
``asyncio.Server``). An upgrade that changes one of them must fail loudly, never silently:

- ``pyproject.toml`` bounds the third-party libraries to the releases tested (``SUPPORTED``;
  tests/test_compat.py holds the two in step);
- tests/test_compat.py fails, naming the library and the supported range, when an installed
  version is outside it, and checks that each private API is still there and still behaves
  as used (``problems()``);
- ``bounced serve`` refuses to start with one line saying the same (``require()``).

The lower ends of ``SUPPORTED`` are the releases Debian 12 ships (its package runs on them),
which may be older than the floors ``pyproject.toml`` asks of PyPI for security fixes.

Nothing here imports a third-party library at run time: the classifier, which needs only
pyahocorasick, imports this module too.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Callable, Mapping
from email import _header_value_parser
from email.message import Message
from importlib import metadata
from re import _constants as _re_constants  # type: ignore[attr-defined]
from re import _parser as _re_parser  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any, TypeVar

from bounced.exceptions import BouncedError

if TYPE_CHECKING:
    import asyncio

    import aiosqlite
    from aiosmtpd.smtp import SMTP as _SMTPBase
else:
    _SMTPBase = object

_T = TypeVar("_T")

# Third-party libraries whose private APIs are used: (first release tested, first release not
# supported). Tested: aiosmtpd 1.4.3 (Debian 12) and 1.4.6; aiosqlite 0.17.0 (Debian 12) and
# 0.22.1. pyproject.toml's upper bounds are the same.
SUPPORTED: dict[str, tuple[str, str]] = {
    "aiosmtpd": ("1.4.3", "1.5"),
    "aiosqlite": ("0.17", "0.23"),
}
# What each is used for, for the message that refuses a version.
USES = {
    "aiosmtpd": "SMTP._getaddr, _handle_client, _call_handler_hook, _set_post_data_state, "
                "_reader, _writer",
    "aiosqlite": "Connection._execute, Connection._conn",
}


class IncompatibleLibrary(BouncedError):
    """An installed library is outside the range whose private APIs bounced was tested with."""


# ----------------------------------------------------------------------- the email package

# RFC 5322 address parsing as aiosmtpd's own MAIL/RCPT parser does it (bounced's faster parser
# falls back to it and must answer the same). The public email.utils.parseaddr reads addresses
# differently and does not return the rest of the line (the MAIL/RCPT parameters).
get_addr_spec = _header_value_parser.get_addr_spec
get_angle_addr = _header_value_parser.get_angle_addr

# The attributes of email.message.Message that bounced.classify.mime's lazily parsed Part
# sets and overrides (Message.__init__ written out, the body read on first use): the email
# package reads and writes them directly, and has no public hook for either.
MESSAGE_ATTRIBUTES = ("_headers", "_unixfrom", "_payload", "_charset", "_default_type")


# ------------------------------------------------------------------------ the re package

# A pattern's parse tree (re._parser.parse and its opcodes, re._constants): the classifier
# reads from its own patterns the literal strings every match contains, so that a prefilter
# of ``in`` tests cannot disagree with the pattern (bounced.classify.literals). No public
# API gives the tree; the opcodes are compared by identity, as the re package does.
parse_regex = _re_parser.parse
re_opcodes = _re_constants


def message_params(msg: Message, failobj: Any, header: str) -> Any:
    """``Message._get_params_preserve``: a header's parameters as get_param, get_boundary and
    get_content_charset read them (a subclass that remembers them overrides it, and asks the
    email package's own for the values it does not read itself)."""
    return Message._get_params_preserve(msg, failobj, header)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------- aiosmtpd


class SMTPHooks(_SMTPBase):
    """Mixed in before ``aiosmtpd.smtp.SMTP``: the private parts of its protocol that bounced's
    SMTP server extends, under names of bounced's own (aiosmtpd has no public hook to parse
    MAIL/RCPT paths, to refuse a connection before the greeting, or to read DATA itself).

    A subclass overrides ``parse_path`` and ``serve_client`` rather than aiosmtpd's names."""

    # aiosmtpd calls these two; they hand over to the names below.
    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        return self.parse_path(arg)

    async def _handle_client(self) -> None:
        await self.serve_client()

    def parse_path(self, arg: str) -> tuple[str | None, str | None]:
        """A MAIL or RCPT argument as (path, rest of the line); (None, None) when invalid.
        By default aiosmtpd's own parser."""
        result: tuple[str | None, str | None] = super()._getaddr(arg)
        return result

    async def serve_client(self) -> None:
        """Serve one connection (greeting, commands); by default aiosmtpd's own loop."""
        await super()._handle_client()

    @property
    def stream_reader(self) -> asyncio.StreamReader:
        """The connection's stream reader, for a command that reads the client's data itself."""
        reader: asyncio.StreamReader = self._reader
        return reader

    def close_stream(self) -> None:
        """Close the connection's writer (what aiosmtpd does when a read is cancelled)."""
        self._writer.close()

    async def call_handler_hook(self, command: str, *args: Any) -> Any:
        """The handler's ``handle_<command>`` result, or ``MISSING`` when it has none."""
        return await self._call_handler_hook(command, *args)

    def reset_after_data(self) -> None:
        """A fresh envelope for the next transaction, as after aiosmtpd's DATA."""
        self._set_post_data_state()  # type: ignore[no-untyped-call]


# -------------------------------------------------------------------------------- aiosqlite


async def run_in_thread(conn: aiosqlite.Connection, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in the connection's own thread, in one trip (``Connection._execute``):
    aiosqlite's public API runs one statement per trip, and a whole transaction in one trip
    is what keeps the store's commits cheap (bench/README.md)."""
    result: _T = await conn._execute(fn, *args)  # type: ignore[no-untyped-call]
    return result


def sqlite_connection(conn: aiosqlite.Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection inside an aiosqlite one (``Connection._conn``); to be used
    only in that connection's thread (``run_in_thread``)."""
    return conn._conn


# ---------------------------------------------------------------------------- the checks


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "1.4.4.post2" -> (1, 4, 4)."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


def installed_versions() -> dict[str, str | None]:
    """The installed version of each library in ``SUPPORTED`` (None when not installed)."""
    found: dict[str, str | None] = {}
    for name in SUPPORTED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def version_problems(versions: Mapping[str, str | None]) -> list[str]:
    """One line for each library whose version is outside its supported range."""
    problems = []
    for name, version in versions.items():
        if version is None or name not in SUPPORTED:
            continue
        low, high = SUPPORTED[name]
        if not release(low) <= release(version) < release(high):
            problems.append(
                f"{name} {version} is not supported: bounced uses its private {USES[name]}, "
                f"tested with {name} >= {low}, < {high}; install a version in that range")
    return problems


def api_problems() -> list[str]:
    """One line for each private API that is missing or no longer behaves as used."""
    return _email_problems() + _re_problems() + _library_problems()


def _re_problems() -> list[str]:
    try:
        (op, value), = parse_regex("a", 0)
        if op is not re_opcodes.LITERAL or value != ord("a"):
            raise ValueError(op, value)
        missing = [name for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT",
                                     "SUBPATTERN", "ATOMIC_GROUP", "BRANCH")
                   if not hasattr(re_opcodes, name)]
        if missing:
            raise ValueError("missing " + ", ".join(missing))
    except Exception as exc:
        return [f"this Python's re._parser does not parse patterns as bounced's classifier "
                f"expects ({exc!r})"]
    return []


def _email_problems() -> list[str]:
    problems = []
    try:
        addr, rest = get_angle_addr("<a@b.example> SIZE=1")
        if addr.addr_spec != "a@b.example" or rest.strip() != "SIZE=1":
            raise ValueError(addr.addr_spec, rest)
        if get_addr_spec("a@b.example")[0].addr_spec != "a@b.example":
            raise ValueError("get_addr_spec")
    except Exception as exc:
        problems.append(f"this Python's email._header_value_parser does not parse addresses "
                        f"as bounced expects ({exc!r})")
    msg = Message()
    missing = [a for a in MESSAGE_ATTRIBUTES if not hasattr(msg, a)]
    msg["Content-Type"] = 'multipart/mixed; boundary="b"'
    try:
        if message_params(msg, None, "content-type")[1] != ("boundary", '"b"'):
            raise ValueError("parameters")
    except Exception:
        missing.append("_get_params_preserve")
    if missing:
        problems.append("this Python's email.message.Message lacks " + ", ".join(missing)
                        + ", which bounced's MIME parser sets or overrides")
    return problems


def _library_problems() -> list[str]:
    # (aiosmtpd's _reader and _writer are set per connection: the SMTP tests use them.)
    wanted = {
        "aiosmtpd.smtp.SMTP": ("_getaddr", "_handle_client", "_call_handler_hook",
                               "_set_post_data_state"),
        "aiosqlite.Connection": ("_execute", "_conn"),
    }
    problems = []
    for where, names in wanted.items():
        module, _, name = where.rpartition(".")
        try:
            owner = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue  # not installed: nothing uses it then (a version problem says the rest)
        if gone := [n for n in names if not hasattr(owner, n)]:
            problems.append(f"{module.partition('.')[0]}'s {name} lacks {', '.join(gone)}")
    return problems


def problems() -> list[str]:
    """Everything that makes the installed libraries unfit for bounced, one line each."""
    return version_problems(installed_versions()) + api_problems()


def require() -> None:
    """Raise IncompatibleLibrary (one line) unless the installed libraries are fit."""
    found = problems()
    if found:
        raise IncompatibleLibrary("; ".join(found))
