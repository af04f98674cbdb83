"""Versioned schema migrations, one directory of ``NNNN_name.sql`` files per backend."""

from __future__ import annotations

from importlib import resources


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration of ``backend``, in order."""
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found)
