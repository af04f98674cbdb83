"""The unconfirm rule as a pure function over incidents."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from bounced.config import PolicySettings
from bounced.model import UNCONFIRMED, AddressState, Incident
from bounced.policy.rule import counted, decide, may_count, plan

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
SETTINGS = PolicySettings()


def incident(sent_days_ago: int, *, token: str | None = None, reason: str = "userunknown",
             status: str = "5.1.1", kind: str = "bounce", action: str = "failed",
             received_days_ago: int | None = None, counts: bool = True) -> Incident:
    received = NOW - dt.timedelta(days=received_days_ago if received_days_ago is not None
                                  else max(sent_days_ago - 1, 0), hours=1)
    return Incident(
        id=None, message_id=sent_days_ago, subject="4711", fingerprint="fp", address="a@x.test",
        token_id=token or f"t{sent_days_ago}", send_day=NOW.date() - dt.timedelta(sent_days_ago),
        received_at=received, kind=kind, action=action, status=status, reply_code="550",
        reason=reason, hard=True, counts=counts, diagnostic="", remote_mta="",
    )


def test_seed_rule_fires_at_three_bounces_over_seven_days() -> None:
    """Three counting bounces sent 10, 6 and 2 days ago give an unconfirm decision with evidence."""
    decision = decide(SETTINGS, None, [incident(10), incident(6), incident(2)], NOW)
    assert decision is not None and decision.action == "unconfirm"
    assert [e["token_id"] for e in decision.evidence] == ["t10", "t6", "t2"]


def test_span_too_short_or_too_few_do_not_fire() -> None:
    """Two bounces, or three within fewer than 7 days, give no decision."""
    assert decide(SETTINGS, None, [incident(10), incident(2)], NOW) is None
    assert decide(SETTINGS, None, [incident(8), incident(6), incident(2)], NOW) is None


def test_old_incidents_fall_out_of_the_window() -> None:
    """Bounces sent more than window_days ago do not count."""
    assert decide(SETTINGS, None, [incident(70), incident(6), incident(2)], NOW) is None


def test_reconfirmation_forgets_earlier_history() -> None:
    """Incidents received before the last reconfirmation do not count."""
    state = AddressState("4711", "fp", "a@x.test", reconfirmed_at=NOW - dt.timedelta(days=3))
    assert decide(SETTINGS, state, [incident(10), incident(6), incident(2)], NOW) is None


def test_plan_counts_each_token_once_and_skips_soft_reasons() -> None:
    """plan() marks a repeated token and non-counting reasons as not counting."""
    history = [incident(10, token="same")]
    new = [incident(9, token="same"), incident(5, reason="blocked", status="5.7.1"),
           incident(4, kind="delay", action="delayed", status="4.2.2", reason="mailboxfull")]
    result = plan(SETTINGS, None, history, new, NOW)
    assert [i.counts for i in result.incidents] == [False, False, False]
    assert result.decision is None


def test_no_second_decision_once_unconfirmed() -> None:
    """An address already unconfirmed gets no new decision from more bounces."""
    state = AddressState("4711", "fp", "a@x.test", state=UNCONFIRMED)
    result = plan(SETTINGS, state, [incident(10), incident(6)], [incident(2)], NOW)
    assert result.decision is None and result.incidents[0].counts


def test_notaccept_counts_only_when_permanent() -> None:
    """notaccept counts with a 5.x.x status and not with a 4.x.x one."""
    assert may_count(SETTINGS, incident(1, reason="notaccept", status="5.1.10"))
    assert not may_count(SETTINGS, incident(1, reason="notaccept", status="4.4.4"))


def test_thresholds_are_configuration() -> None:
    """min_bounces, min_span_days and window_days change the outcome as configured."""
    lax = dataclasses.replace(SETTINGS, min_bounces=2, min_span_days=1, window_days=5)
    assert decide(lax, None, [incident(3), incident(1)], NOW) is not None
    assert decide(lax, None, [incident(6), incident(1)], NOW) is None


@given(st.lists(st.tuples(st.integers(0, 80), st.sampled_from(["a", "b", "c", "d"]),
                          st.booleans()), max_size=12))
def test_decision_evidence_always_satisfies_the_rule(items: list[tuple[int, str, bool]]) -> None:
    """Whenever a decision is made its evidence meets the rule; otherwise the rule is not met."""
    history = [incident(age, token=tok, counts=c) for age, tok, c in items]
    decision = decide(SETTINGS, None, history, NOW)
    evidence = counted(SETTINGS, history, None, NOW)
    days = [i.send_day for i in evidence]
    met = len(evidence) >= 3 and (max(days) - min(days)).days >= 7
    assert (decision is not None) == met
    if decision is not None:
        tokens = [e["token_id"] for e in decision.evidence]
        assert len(tokens) == len(set(tokens))
