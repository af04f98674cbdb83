"""Many literal strings looked for in one pass over a text (an Aho-Corasick automaton,
pyahocorasick, in C).

The phrase tables hold about a thousand wordings and grow with every mail system's: looked
for one by one (``phrase in text``) or through one regex alternation (tried at every
character), a text costs in proportion to the table; through the automaton it costs one
pass over the text however many strings there are, and finds every occurrence of every
string, overlapping ones included, so it answers as testing each string with ``in`` would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import ahocorasick

T = TypeVar("T")


class Strings(Generic[T]):
    """Strings, each with the values it stands for (a string may stand for several)."""

    def __init__(self, pairs: Iterable[tuple[str, T]]) -> None:
        values: dict[str, list[T]] = {}
        for string, value in pairs:
            if not string:
                raise ValueError("an empty string is in every text")
            values.setdefault(string, []).append(value)
        self._automaton: Any = ahocorasick.Automaton()
        for string, found in values.items():
            self._automaton.add_word(string, (len(string), tuple(found)))
        self._empty = not values
        if not self._empty:
            self._automaton.make_automaton()

    def occurrences(self, text: str) -> list[tuple[int, tuple[T, ...]]]:
        """(start, values) for every occurrence in ``text`` of every string, in the order
        of their ends."""
        if self._empty:
            return []
        return [(end - length + 1, values)
                for end, (length, values) in self._automaton.iter(text)]

    def values_in(self, text: str) -> set[T]:
        """The values of every string that occurs in ``text``."""
        found: set[T] = set()
        if not self._empty:
            for _, (_, values) in self._automaton.iter(text):
                found.update(values)
        return found
