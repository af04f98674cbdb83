"""Versioned schema migrations, one directory of ``NNNN_name.sql`` files per backend."""

from __future__ import annotations

from collections.abc import Collection
from importlib import resources

from bounced import __version__
from bounced.exceptions import SchemaMismatch


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration of ``backend``, in order."""
    folder = resources.files(__package__).joinpath(backend)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def check_schema(applied: Collection[int], backend: str, store: str, *,
                 migrating: bool) -> None:
    """Raise SchemaMismatch unless a store whose applied migrations are ``applied`` can be
    used by this bounced: never when it holds a migration this bounced does not know (a newer
    bounced migrated it: its tables may mean something else now, and nothing migrates them
    down), and, unless ``migrating`` (serve, migrate), never with a migration still pending:
    only those two commands change a schema, so a read command or the pipe run by the mail
    server before the daemon was restarted after an upgrade leaves it as it is."""
    known = [version for version, _, _ in migrations(backend)]
    needed = known[-1]
    unknown = set(applied) - set(known)
    if unknown:
        found = max(unknown)
        raise SchemaMismatch(
            f"{store}: store schema is at {found}, newer than this bounced ({__version__}) "
            f"knows ({needed}): a newer bounced migrated it; run that version (a schema is "
            "never migrated down)", found, needed)
    pending = [version for version in known if version not in applied]
    if pending and not migrating:
        found = pending[0] - 1
        raise SchemaMismatch(
            f"{store}: store schema is at {found}, this bounced needs {needed}: run "
            "`bounced migrate` (or restart `bounced serve`, which migrates)", found, needed)
