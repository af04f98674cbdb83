"""Regenerate expected.jsonl from the upstream tests of Mail::DeliveryStatus::BounceParser.

    python3 tests/heldout/bounceparser/generate.py        (needs perl; JSON::PP is core)

The upstream test scripts (t/*.t, unchanged) run against the stubs in stub/: their
check_report() calls and their Test::More assertions about the parser's results are
written out as data instead of being checked, so every label below is what an upstream
test states, never what a parser (theirs or ours) says. Expectations made with a
non-default parser option (prefer_final_recipient) are left out: without options the
upstream tests expect the original recipient, as bounced reports it.

The category (upstream ``std_reason``) maps to the project's reasons and hard flag by
CATEGORIES; corrections.json then overrides single fields where the message's own words
contradict the mapped label, keeping the mapped value in ``corrected_from`` and the reason
in ``why``.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent

# BounceParser's standard reasons -> (the project's reasons that say the same, hard).
# hard None: the category alone does not tell whether the address is proven dead.
CATEGORIES: dict[str, tuple[list[str], bool | None]] = {
    "user_unknown": (["userunknown"], True),
    "user_disabled": (["suspend"], False),
    "over_quota": (["mailboxfull"], False),
    "domain_error": (["hostunknown"], True),
    # "the recipient considered it spam": content filters, block lists and policy replies
    "spam": (["spamdetected", "blocked", "filtered", "policyviolation", "contenterror"], False),
    # the project splits it: exceedlimit for the recipient's own limit (5.2.3)
    "message_too_large": (["emailtoolarge", "exceedlimit"], False),
    "unknown": ([], None),
}


def records() -> list[dict[str, object]]:
    """What the upstream tests assert, one dict per assertion about a corpus file."""
    rows: list[dict[str, object]] = []
    for test in sorted((HERE / "t").glob("*.t")):
        run = subprocess.run(["perl", "-T", "-w", "-I", "stub", str(test.relative_to(HERE))],
                             cwd=HERE, capture_output=True, text=True, check=False)
        rows += [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    return rows


def build() -> list[dict[str, object]]:
    """One expected row per corpus file."""
    fields: dict[str, dict[str, object]] = defaultdict(dict)
    tests: dict[str, set[str]] = defaultdict(set)
    todo: dict[str, set[str]] = defaultdict(set)
    for rec in records():
        if rec.get("options"):
            continue
        name = Path(str(rec["file"])).name
        field = str(rec["field"])
        # message-too-large.t misspells the key (std_reaons): upstream never checked it
        field = "std_reason" if field == "std_reaons" else field
        fields[name][field] = rec["value"]
        tests[name].add(Path(str(rec["test"])).name)
        if rec.get("todo"):
            todo[name].add(field)
    corrections = json.loads((HERE / "corrections.json").read_text())
    rows = []
    for path in sorted((HERE / "t" / "corpus").iterdir()):
        got = fields.get(path.name, {})
        category = got.get("std_reason")
        reasons, hard = CATEGORIES.get(str(category), ([], None)) if category else ([], None)
        code = str(got.get("smtp_code") or "")
        if hard is None and code.startswith("4"):
            hard = False  # a temporary reply proves nothing about the address
        addresses = got.get("addresses")
        if addresses is None and got.get("reports") == 0:
            addresses = []
        row: dict[str, object] = {
            "file": f"t/corpus/{path.name}",
            "bounce": None if "is_bounce" not in got else bool(got["is_bounce"]),
            "recipients": None if addresses is None else [str(a).lower() for a in addresses],
            # a bounce reports at least one failed address
            "min_recipients": max(int(got.get("min_addresses", 0)),
                                  1 if got.get("is_bounce") else 0),
            "category": category,
            "reasons": reasons,
            "hard": hard,
            "smtp_code": code,
            "status": got.get("status", ""),
            "tests": sorted(tests.get(path.name, ())),
            "todo": sorted(todo.get(path.name, ())),
        }
        fix = corrections.get(path.name)
        if fix:
            row["corrected_from"] = {key: row.get(key) for key in fix["set"]}
            row.update(fix["set"])
            row["why"] = fix["why"]
        rows.append(row)
    unknown = set(corrections) - {Path(str(r["file"])).name for r in rows}
    assert not unknown, f"corrections for files not in the corpus: {unknown}"
    return rows


def main() -> None:
    rows = build()
    with (HERE / "expected.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps(row, sort_keys=True) + "\n")
    print(f"{len(rows)} rows, {sum('why' in r for r in rows)} corrected")


if __name__ == "__main__":
    main()
