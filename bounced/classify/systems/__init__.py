"""Mail systems, one module each: what the classifier knows of one system's wording.

A module of this package defines ``SYSTEM``, a ``System``: the system's name, the hosts it
runs (domain names its servers and reports carry), header fields that mark a report it
wrote, and whether it is a filtering gateway. Adding a system is adding one module: the
package reads every module in it (``SYSTEMS``, in module name order).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bounced.classify.multisearch import Strings


@dataclass(frozen=True)
class System:
    """One mail system (an MTA, a provider, a filtering service).

    ``hosts``: domain names of its servers (a host is the system's when it is one of these
    or ends with "." and one of these). ``markers``: (header field name, lowercase text
    its value contains; "" for any value) that only a report written by the system carries.
    ``filtering``: a filtering gateway (a content filter in front of or behind mailboxes):
    the "user unknown" it reports after the message was sent may be its filter's verdict.
    ``replies``: (regular expression, reason) of the system's own replies, matched in the
    lowercase, whitespace-normalised diagnostic, and only for a recipient whose domain,
    remote host or reporting host is one of ``hosts`` (a system without hosts: always).
    ``phrases``: (group of the phrase table, wordings) the system writes in its own reports
    and replies: added to that group of ``bounced.classify.phrases`` (searched everywhere,
    as the words of any reply are). ``connect_failures``: the system's words for an attempt
    that could not talk to the receiving host at all (an SMTP client retries those until
    its queue lifetime ends): added to ``bounced.classify.phrases.CONNECT_FAILURES``."""

    name: str
    hosts: tuple[str, ...] = ()
    markers: tuple[tuple[str, str], ...] = ()
    filtering: bool = False
    replies: tuple[tuple[str, str], ...] = ()
    phrases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    connect_failures: tuple[str, ...] = ()
    compiled: tuple[tuple[re.Pattern[str], str], ...] = field(default=(), init=False,
                                                               repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled",
                           tuple((re.compile(rx), reason) for rx, reason in self.replies))

    def runs(self, host: str) -> bool:
        """Whether ``host`` (lowercase) is one of the system's servers."""
        return any(host == h or host.endswith("." + h) for h in self.hosts)


def _load() -> tuple[System, ...]:
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        system = getattr(module, "SYSTEM", None)
        if not isinstance(system, System):
            raise TypeError(f"{module.__name__} defines no SYSTEM")
        found.append(system)
    return tuple(found)


SYSTEMS: tuple[System, ...] = _load()
FILTERING: tuple[System, ...] = tuple(s for s in SYSTEMS if s.filtering)
REPLYING: tuple[System, ...] = tuple(s for s in SYSTEMS if s.replies)


def _by_host(systems: tuple[System, ...]) -> dict[str, System]:
    return {host: system for system in systems for host in system.hosts}


_FILTERING_HOSTS = _by_host(FILTERING)
_MARKERS = tuple((name, text, system) for system in FILTERING for name, text in system.markers)


def _host_system(host: str, table: dict[str, System]) -> System | None:
    """The system of ``table`` that runs ``host``: the host or one of its parent domains."""
    while host:
        system = table.get(host)
        if system is not None:
            return system
        host = host.partition(".")[2]
    return None


def _needs(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    from bounced.classify.literals import required  # (no import at module level: no cycle)

    return required(pattern)


# Per system with replies, its patterns with the words each needs (None: always tried).
_REPLIES = tuple((system, tuple((pattern, reason, _needs(pattern))
                                for pattern, reason in system.compiled))
                 for system in REPLYING)
# The words each reply needs, found in one pass over a text (bounced.classify.multisearch):
# only the replies whose words are in it are searched, in the table's order; the replies
# that need no word are always searched.
_REPLY_WORDS: Strings[tuple[int, int]] = Strings(
    (word, (si, ri)) for si, (_, replies) in enumerate(_REPLIES)
    for ri, (_, _, words) in enumerate(replies) for word in words or ())
_ALWAYS = frozenset((si, ri) for si, (_, replies) in enumerate(_REPLIES)
                    for ri, (_, _, words) in enumerate(replies) if words is None)


def system_reply(hosts: Callable[[], tuple[str, ...]], text: str) -> str:
    """The reason a system's own reply in ``text`` names, for a system that runs one of the
    ``hosts()`` (asked only when a reply's words are in the text), or any system without
    hosts; '' when none."""
    worth = _REPLY_WORDS.values_in(text)
    if _ALWAYS:
        worth |= _ALWAYS
    known: tuple[str, ...] | None = None
    elsewhere = -1  # a system with hosts none of which runs: its other replies are skipped
    for si, ri in sorted(worth):
        system, replies = _REPLIES[si]
        if si == elsewhere:
            continue
        if system.hosts:
            known = hosts() if known is None else known
            if not any(system.runs(h) for h in known if h):
                elsewhere = si
                continue
        pattern, reason, _ = replies[ri]
        if pattern.search(text):
            return reason
    return ""


def gateway_host(hosts: tuple[str, ...]) -> str:
    """The name of the filtering gateway that runs one of ``hosts``, '' when none."""
    for host in hosts:
        system = _host_system(host, _FILTERING_HOSTS)
        if system is not None:
            return system.name
    return ""


def gateway_marker(values: Callable[[str], str]) -> str:
    """The name of the filtering gateway whose mark is in a report's header fields
    (``values(name)``: the lowercase values of that field, one per line), '' when none."""
    for name, text, system in _MARKERS:
        value = values(name)
        if value and text in value:
            return system.name
    return ""


def filtering_gateway(hosts: tuple[str, ...], headers: dict[str, str]) -> str:
    """The name of the filtering gateway that runs one of ``hosts`` or whose mark is in
    ``headers`` (lowercase names to their lowercase values, one per line), '' when none."""
    return gateway_host(hosts) or gateway_marker(lambda name: headers.get(name, ""))
