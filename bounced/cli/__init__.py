"""The ``bounced`` command: entry points and wiring only; errors become messages and exit codes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from bounced import __version__
from bounced.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Settings,
    config_path,
    env_warnings,
    load_settings,
)
from bounced.exceptions import BouncedError, StoreNotFound
from bounced.exits import EX_TEMPFAIL, EXIT_FAIL, EXIT_INTERRUPTED, EXIT_SIGPIPE, EXIT_USAGE
from bounced.logs import configure
from bounced.model import JOB_STATES


def _at_least(minimum: int) -> Any:
    """An argparse type: a whole number not below ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value
    return parse


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _checked(parse: Any) -> Any:
    """An argparse type from one of ``bounced.api.overview``'s parsers: its one-line error becomes
    a usage error (exit 2)."""
    from bounced.api.overview import BadQuery

    def check(text: str) -> Any:
        try:
            return parse(text)
        except BadQuery as exc:
            raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None
    return check


def _since(text: str) -> dt.datetime:
    from bounced.api.overview import parse_since
    from bounced.model import utcnow

    return _checked(lambda t: parse_since(t, utcnow()))(text)  # type: ignore[no-any-return]


def _types(text: str) -> tuple[str, ...]:
    from bounced.api.overview import parse_types

    return _checked(lambda t: parse_types([t]))(text)  # type: ignore[no-any-return]


def _overview(name: str) -> Any:
    """An argparse type checked by ``bounced.api.overview``'s parser ``name``."""
    def parse(text: str) -> Any:
        from bounced.api import overview

        return _checked(getattr(overview, name))(text)
    return parse


def _email(text: str) -> str:
    """An argparse type: what `bounced sign` accepts as an address (a fingerprint of anything
    else matches nothing, and "no incidents recorded; confirmed" would be a wrong answer)."""
    if "@" not in text or not text.strip():
        raise argparse.ArgumentTypeError(f"not an email address: {text!r}")
    return text


# Arguments that name files: any bytes are a valid file name there. Every other argument is
# text the store or a token carries, which must be UTF-8 (the shell hands undecodable bytes
# over as surrogates, which ended in a UnicodeEncodeError traceback).
_FILE_ARGS = frozenset({"config", "out"})


def _undecodable(args: argparse.Namespace) -> tuple[str, str] | None:
    """The first text argument that is not valid UTF-8 (its name and value), if any."""
    for name, value in vars(args).items():
        if name in _FILE_ARGS:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return name, item
    return None


def _label(parser: argparse.ArgumentParser, command: str, dest: str) -> str:
    """How argparse names an argument in its errors: its first option, else its metavar."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if a.dest == dest)
    return action.option_strings[0] if action.option_strings else str(action.metavar or dest)


SINCE_HELP = ("WHEN: a duration back from now (90m, 24h, 7d, 2w), a day YYYY-MM-DD (its start, "
              "UTC) or a moment YYYY-MM-DDTHH:MM (UTC unless an offset is given)")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (what was wrong, where to read more), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bounced", description="Bounce handler: signed return "
                                "paths in, unconfirmed dead addresses out.")
    p.add_argument("--version", action="version", version=f"bounced {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str, config: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if config:
            sp.add_argument(
                "--config", "-c", metavar="FILE", default=None,
                help=f"TOML configuration file (default: $BOUNCED_CONFIG, else "
                     f"{DEFAULT_CONFIG_PATH} if it exists, else built-in defaults)",
            )
        return sp

    cmd("serve", "run the daemon (SMTP intake and worker)")
    cmd("check-config", "validate the configuration and the signing keys")
    cmd("migrate", "apply pending schema migrations to the store")
    sp = cmd("keygen", "write a new signing key file", config=False)
    sp.add_argument("--out", required=True, metavar="FILE", help="key file to create (mode 0600)")
    sp.add_argument("--id", dest="key_id", metavar="ID", help="key id (default: random)")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file")
    sp = cmd("sign", "print a signed return path for a recipient")
    sp.add_argument("--subject", required=True, metavar="S",
                    help="the application's id for the recipient")
    sp.add_argument("--address", required=True, metavar="ADDRESS",
                    help="the recipient's email address")
    sp.add_argument("--stream", metavar="NAME", help="optional mail stream name")
    sp.add_argument("--at", type=_date, metavar="YYYY-MM-DD",
                    help="issue day (default: today)")
    sp = cmd("verify", "check a return path and print what it carries")
    sp.add_argument("address", help="the return path, e.g. bounce-...@bounces.example.org")
    sp.add_argument("--at", type=_date, metavar="YYYY-MM-DD",
                    help="verify as of this day (default: today)")
    sp = cmd("status", "show an address's state and history")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--subject", metavar="S", help="the application's id for the recipient")
    who.add_argument("--address", metavar="ADDRESS", type=_email,
                     help="an email address (matched by its "
                     "fingerprint, in any case)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = cmd("reconfirm", "record that the application confirmed the address again")
    sp.add_argument("--subject", required=True, metavar="S",
                    help="the application's id for the recipient; history before now stops "
                    "counting")
    sp = cmd("queue", "show job counts and the latest jobs by state")
    sp.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    sp.add_argument("--limit", type=_at_least(1), default=10, metavar="N",
                    help="latest jobs shown per state (default: 10)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = cmd("show", "show one stored message: envelope, token, classification, incidents")
    sp.add_argument("id", type=int, metavar="ID", help="the message id (bounced queue shows it)")
    sp.add_argument("--raw", action="store_true", help="print the raw message too")
    sp = cmd("reprocess", "queue stored messages for processing again")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID",
                       help="message ids to process again")
    which.add_argument("--failed", action="store_true", help="every failed message")
    which.add_argument("--quarantined", action="store_true", help="every quarantined message")
    sp = cmd("deliver", "pipe mode: store one message from stdin (exit codes: sysexits)")
    sp.add_argument("recipient", nargs="?", help="envelope recipient (default: $RECIPIENT, "
                    "$ORIGINAL_RECIPIENT, or $LOCAL_PART@$DOMAIN)")
    sp.add_argument("--sender", metavar="ADDRESS", help="envelope sender (default: $SENDER)")
    sp = cmd("breaker", "list domain breakers, or release one")
    sp.add_argument("action", choices=["list", "release"], nargs="?", default="list",
                    help="list the breakers (default), or release the one of DOMAIN")
    sp.add_argument("domain", nargs="?", metavar="DOMAIN", help="the receiving domain to release")
    sp = cmd("events", "show the latest events and where they were delivered")
    sp.add_argument("--type", dest="types", action="append", default=[], metavar="TYPE",
                    type=_types,
                    help="only events of this type (repeat, or separate with commas): "
                    "address.unconfirmed, address.reconfirmed, complaint.received, "
                    "bounce.unrecognised, breaker.tripped, breaker.released")
    sp.add_argument("--since", type=_since, metavar="WHEN",
                    help=f"only events that occurred since {SINCE_HELP}")
    sp.add_argument("--limit", type=_at_least(1), default=20,
                    help="show at most this many, newest first (default: 20)")
    sp.add_argument("--cursor", type=_overview("parse_event_cursor"),
                    help="go on after the last event shown before (the cursor printed with "
                    "the previous page)")
    sp.add_argument("--json", action="store_true", help="print one JSON object per line")
    sp = cmd("addresses", "list addresses by state, latest change first")
    sp.add_argument("--state", choices=["unconfirmed", "confirmed", "any"], default="any",
                    help="only addresses in this state (default: any)")
    sp.add_argument("--since", type=_since, metavar="WHEN",
                    help=f"only addresses whose state changed since {SINCE_HELP}")
    sp.add_argument("--domain", metavar="DOMAIN",
                    type=_overview("parse_domain"),
                    help="only addresses at this receiving domain (e.g. example.net)")
    sp.add_argument("--limit", type=_at_least(1), default=50,
                    help="show at most this many (default: 50)")
    sp.add_argument("--cursor", type=_overview("parse_address_cursor"),
                    help="go on after the last address shown before (the cursor printed "
                    "with the previous page)")
    sp.add_argument("--json", action="store_true", help="print one JSON object per line")
    sp = cmd("stats", "summarise bounces, reasons, domains and decisions, and the queues' health")
    sp.add_argument("--since", type=_since, metavar="WHEN",
                    help=f"the period to summarise starts at {SINCE_HELP} (default: 7d)")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp = cmd("process", "process every runnable stored message now, then exit")
    sp = cmd("purge", "drop raw messages and incidents past their retention")
    sp.add_argument("--dry-run", action="store_true", help="count what would go, drop nothing")
    sp.add_argument("--raw-days", type=_at_least(0), default=None, metavar="DAYS",
                    help="keep raw messages this long (default: [retention] raw_days)")
    sub.add_parser("classify", help="classify bounce messages without storing anything",
                   add_help=False)
    return p


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    try:
        return _main(argv, stdout)
    except BrokenPipeError:
        # The reader went away (`bounced queue | head`): stop quietly, as the shell's own
        # tools do, and keep Python from complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_SIGPIPE


def _main(argv: Sequence[str] | None, stdout: TextIO | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout
    if argv[:1] == ["classify"]:
        from bounced.classify.cli import main as classify_main

        return classify_main(argv[1:], out, sys.stdin)
    parser = _parser()
    args = parser.parse_args(argv)
    bad = _undecodable(args) if args.command != "deliver" else None  # the pipe: its own answer
    if bad is not None:
        name, value = bad
        print(f"bounced {args.command}: error: argument {_label(parser, args.command, name)}: "
              f"not UTF-8 text: {value!r} (see: bounced {args.command} --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _dispatch(args, out)
    except StoreNotFound as exc:
        print(f"bounced {args.command}: {exc} (configuration: "
              f"{getattr(args, 'config', None) or 'built-in defaults'}); point --config or "
              f"${CONFIG_ENV} at the service's configuration, or create an empty store with "
              "`bounced migrate`", file=sys.stderr)
        return EXIT_FAIL
    except BouncedError as exc:
        print(f"bounced {args.command}: {exc}", file=sys.stderr)
        # In pipe mode the mail server must keep the message and retry (EX_TEMPFAIL).
        return EX_TEMPFAIL if args.command == "deliver" else EXIT_FAIL
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _settings(args: argparse.Namespace) -> Settings:
    """The settings every command reads: --config, else $BOUNCED_CONFIG, else the default
    path when it exists (what the service reads), else the built-in defaults."""
    if args.config is None:
        args.config = config_path()
    settings = load_settings(args.config)
    for warning in env_warnings(settings):
        print(f"bounced {args.command}: warning: {warning}", file=sys.stderr)
    return settings


def _dispatch(args: argparse.Namespace, out: TextIO) -> int:
    from bounced.cli import commands

    if args.command == "keygen":
        return commands.keygen(Path(args.out), args.key_id, args.force, out)
    settings = _settings(args)
    configure(settings.log.level, settings.log.format)
    if args.command == "deliver":
        return _deliver(args, settings)
    if args.command == "serve":
        from bounced.loop import run
        from bounced.runtime.app import serve

        return run(lambda: serve(settings))
    if args.command == "sign":
        return commands.sign(settings, args.subject, args.address, args.stream, args.at, out)
    if args.command == "verify":
        return commands.verify(settings, args.address, args.at, out)
    handlers: dict[str, Any] = {
        "check-config": lambda: commands.check_config(settings, args.config, out),
        "migrate": lambda: commands.migrate(settings, out),
        "status": lambda: commands.status(settings, args.subject, args.address, args.json, out),
        "reconfirm": lambda: commands.reconfirm(settings, args.subject, out),
        "queue": lambda: commands.queue(settings, args.state, args.limit, args.json, out),
        "show": lambda: commands.show(settings, args.id, args.raw, out),
        "reprocess": lambda: commands.reprocess(
            settings, args.ids, args.failed, args.quarantined, out),
        "process": lambda: commands.process(settings, out),
        "breaker": lambda: commands.breaker(settings, args.action, args.domain, out),
        "events": lambda: commands.events(settings, _event_query(args), args.json, out),
        "addresses": lambda: commands.addresses(settings, _address_query(args), args.json, out),
        "stats": lambda: commands.stats(settings, args.since, args.json, out),
        "purge": lambda: commands.purge(settings, args.raw_days, args.dry_run, out),
    }
    result: int = asyncio.run(handlers[args.command]())
    return result


def _event_query(args: argparse.Namespace) -> Any:
    from bounced.store.reports import EventQuery

    types = tuple(dict.fromkeys(t for given in args.types for t in given))
    return EventQuery(types=types, since=args.since, limit=args.limit, after=args.cursor)


def _address_query(args: argparse.Namespace) -> Any:
    from bounced.store.reports import AddressQuery

    return AddressQuery(state=None if args.state == "any" else args.state, since=args.since,
                        domain=args.domain, limit=args.limit, after=args.cursor)


def _deliver(args: argparse.Namespace, settings: Settings) -> int:
    from bounced.intake.pipe import deliver
    from bounced.model import utcnow

    try:
        return asyncio.run(deliver(settings, args.recipient, args.sender, sys.stdin.buffer,
                                   sys.stderr, os.environ, utcnow()))
    except Exception as exc:  # the mail server must retry, never bounce the bounce
        print(f"bounced deliver: {exc!r}", file=sys.stderr)
        return EX_TEMPFAIL
