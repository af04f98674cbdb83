"""The literal strings of which every match of a regular expression contains one.

A pattern searched in a long line costs a step at every character even where it cannot
match; a few ``in`` tests for the words it needs cost almost nothing (``str.find`` skips
through text). ``required`` reads them from the pattern itself (Python's own parse of it),
so a prefilter built from it cannot disagree with the pattern: tested against strings
generated from each pattern in tests/test_classify_linear.py.
"""

from __future__ import annotations

import re
from typing import Any

from bounced.compat import parse_regex
from bounced.compat import re_opcodes as c

Words = frozenset[str]
_REPEATS = (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT)


def _sequence(items: Any) -> Words | None:
    """Words of which a match of the sequence ``items`` contains one: of the words that
    each item (or each run of literal characters) needs, the set whose shortest is longest."""
    candidates: list[Words] = []
    word = ""
    for op, av in items:
        if op is c.LITERAL:
            word += chr(av)
            continue
        if word:
            candidates.append(frozenset((word,)))
            word = ""
        needed = _item(op, av)
        if needed:
            candidates.append(needed)
    if word:
        candidates.append(frozenset((word,)))
    return max(candidates, key=lambda words: min(map(len, words)), default=None)


def _item(op: Any, av: Any) -> Words | None:
    if op is c.SUBPATTERN:
        return _sequence(av[3])
    if op is c.ATOMIC_GROUP:
        return _sequence(av)
    if op in _REPEATS:
        return _sequence(av[2]) if av[0] >= 1 else None
    if op is c.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        if any(not words for words in branches):
            return None
        return frozenset().union(*branches)  # type: ignore[arg-type]
    return None


def required(pattern: re.Pattern[str], shortest: int = 2) -> tuple[str, ...] | None:
    """Words of which every match of ``pattern`` contains one, lowercase (for a pattern
    that ignores case, compare with the text lowercased by ``textforms.fold``); None when
    the pattern has no such set with words of at least ``shortest`` characters."""
    try:
        words = _sequence(parse_regex(pattern.pattern, pattern.flags))
    except Exception:  # a construct of a later Python this reader does not know: no filter
        return None
    if not words or min(map(len, words)) < shortest:
        return None
    if pattern.flags & re.IGNORECASE and any(w != w.lower() for w in words):
        return None
    # a word that contains another is found whenever that one is: the shorter suffices
    return tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))
