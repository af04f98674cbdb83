"""The reason registry (bounced.classify.registry) is the one vocabulary: the classifier gives
no other reason, its data tables name no other, hardness and default counting come from it,
and the policy and the configuration use it."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from bounced import config
from bounced.classify import classify
from bounced.classify.registry import DEFAULT_COUNTING, FAILURES, HARD, Reason
from bounced.classify.rules import is_hard
from bounced.config import DEFAULT_COUNTING_REASONS, PolicySettings
from bounced.exceptions import ConfigError
from bounced.model import Incident
from bounced.policy.rule import may_count

ROOT = Path(__file__).resolve().parent
MESSAGES = sorted(p for folder in ("corpus/emails", "flufl_bounce/data", "classify/general",
                                   "mta_corpus/emails")
                  for p in (ROOT / folder).glob("*") if p.is_file())
CLASSIFY = ROOT.parent / "bounced" / "classify"
NAMES = {r.value for r in Reason}


def test_every_reason_has_its_meaning() -> None:
    """Each reason says what it means in one line, and the hard ones count by default."""
    for reason in Reason:
        assert reason.meaning and "\n" not in reason.meaning and len(reason.meaning) < 100
        assert not reason.hard or reason.counts, reason
    assert {"userunknown", "hostunknown", "hasmoved", "notaccept"} == HARD
    assert set(DEFAULT_COUNTING) == HARD | {"suspend", "mailboxfull"}
    assert set(FAILURES) == NAMES - {"delivered", "feedback", "vacation"}


def test_the_classifier_gives_only_registered_reasons() -> None:
    """Over every corpus, held-out and hand-written message, each reason is a registered one."""
    seen: set[str] = set()
    for path in MESSAGES:
        for r in classify(path.read_bytes()).recipients:
            assert r.reason in NAMES, (path.name, r.reason)
            seen.add(r.reason)
    assert len(seen) > 25


def _string_constants(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


@pytest.mark.parametrize("module", ["phrases.py", "codes.py", "providers.py",
                                    "detectors/fml.py"])
def test_data_tables_name_registered_reasons(module: str) -> None:
    """A (reason, ...) entry of a data table names a registered reason."""
    path = CLASSIFY / module
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant):
            first = node.elts[0].value
            if isinstance(first, str) and first.isalpha() and first.islower() and len(
                    node.elts) == 2 and isinstance(node.elts[1], ast.Tuple):
                assert first in NAMES, (module, node.lineno, first)
    if module == "codes.py":
        assert {v for v in _string_constants(tree) if v.isalpha()} - NAMES <= {"GENERIC"}


@pytest.mark.parametrize("reason", list(Reason))
def test_hard_follows_the_registry(reason: Reason) -> None:
    """A permanent failure is hard exactly when its reason is registered hard; a temporary
    one, a delay or a delivery never is."""
    assert is_hard(reason, "5.0.0", "550", "failed") == reason.hard
    assert not is_hard(reason, "4.0.0", "450", "failed")
    assert not is_hard(reason, "5.0.0", "550", "delayed")


def _incident(reason: str, status: str) -> Incident:
    return Incident(id=None, message_id=1, subject="s", fingerprint="f", address="a@b.example",
                    token_id="t", send_day=dt.date(2026, 1, 1),
                    received_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), kind="bounce",
                    action="failed", status=status, reply_code=status[:1] + "50", reason=reason,
                    hard=False, counts=False, diagnostic="", remote_mta="", reporting_mta="")


@pytest.mark.parametrize("reason", list(Reason))
def test_the_policy_counts_by_the_registry(reason: Reason) -> None:
    """With the default settings a permanent failure counts exactly when its reason counts by
    default; a domain that accepts no mail counts only when it says so permanently."""
    settings = PolicySettings()
    assert DEFAULT_COUNTING_REASONS == DEFAULT_COUNTING == settings.counting_reasons
    assert may_count(settings, _incident(reason, "5.0.0")) == reason.counts
    if reason == Reason.NOTACCEPT:
        assert not may_count(settings, _incident(reason, "4.0.0"))


def test_the_configuration_refuses_an_unregistered_reason(tmp_path: Path) -> None:
    """[policy] counting_reasons may list every registered failure reason and nothing else:
    a typo is refused with the nearest registered name."""
    assert set(config.REASONS) == set(FAILURES)
    good = tmp_path / "good.toml"
    good.write_text(f"[policy]\ncounting_reasons = {list(FAILURES)!r}\n".replace("'", '"'))
    assert set(config.load_settings(good, env={}).policy.counting_reasons) == set(FAILURES)
    bad = tmp_path / "bad.toml"
    bad.write_text('[policy]\ncounting_reasons = ["userunknown", "mailboxful"]\n')
    with pytest.raises(ConfigError, match=r"mailboxful.*did you mean 'mailboxfull'"):
        config.load_settings(bad, env={})
