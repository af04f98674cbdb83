"""The unconfirm rule: incidents + settings + now -> which incidents count, and a decision. Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bounced.classify.registry import Reason
from bounced.config import BreakerSettings, PolicySettings
from bounced.model import CONFIRMED, AddressState, Decision, DomainStats, Incident, Plan

# Which classified kinds and actions can count at all: a failed delivery in a bounce.
COUNTING_KIND = "bounce"
COUNTING_ACTION = "failed"


def may_count(settings: PolicySettings, incident: Incident) -> bool:
    """Whether this incident's kind, action and reason make it count (before de-duplication)."""
    if incident.kind != COUNTING_KIND or incident.action != COUNTING_ACTION:
        return False
    if incident.reason not in settings.counting_reasons:
        return False
    # a domain that accepts no mail only says so for good with a permanent status
    return not (incident.reason == Reason.NOTACCEPT and incident.status.startswith("4"))


def counted(
    settings: PolicySettings,
    history: Iterable[Incident],
    state: AddressState | None,
    now: dt.datetime,
) -> list[Incident]:
    """The incidents that count now: counting, after the last reconfirmation, within the window,
    at most one per token (the earliest)."""
    window_start = now.date() - dt.timedelta(days=settings.window_days)
    since = state.reconfirmed_at if state is not None else None
    seen: set[str] = set()
    result: list[Incident] = []
    for incident in sorted(history, key=lambda i: (i.received_at, i.id or 0)):
        if not incident.counts or incident.send_day < window_start:
            continue
        if since is not None and incident.received_at <= since:
            continue
        if incident.token_id in seen:
            continue
        seen.add(incident.token_id)
        result.append(incident)
    return result


def plan(
    settings: PolicySettings,
    state: AddressState | None,
    history: Sequence[Incident],
    new: Sequence[Incident],
    now: dt.datetime,
    breaker: BreakerSettings | None = None,
    domain: DomainStats | None = None,
) -> Plan:
    """Mark which new incidents count and decide whether the address is now unconfirmed.

    ``history`` holds the incidents already recorded for this subject and fingerprint; ``new``
    those found in the message being processed (their ``counts`` is ignored and set here).
    With a breaker and the domain's recent figures, a burst of counting bounces from one
    receiving domain trips the breaker, and unconfirms for that domain are held back.
    """
    marked = mark_counting(settings, state, history, new)
    decision = None
    if state is None or state.state == CONFIRMED:
        decision = decide(settings, state, [*history, *marked], now)
    if breaker is None or not breaker.enabled or domain is None or not domain.domain:
        return Plan(incidents=tuple(marked), decision=decision)
    addresses, trip = breaker_figures(breaker, domain, any(i.counts for i in marked))
    held = decision is not None and (domain.tripped or trip)
    return Plan(incidents=tuple(marked), decision=decision, held=held, trip=trip,
                domain_addresses=addresses)


def mark_counting(settings: PolicySettings, state: AddressState | None,
                  history: Sequence[Incident], new: Sequence[Incident]) -> list[Incident]:
    """The new incidents with ``counts`` set: those that may count, at most one per token
    (a token that counted since the last reconfirmation counts no more)."""
    since = state.reconfirmed_at if state is not None else None
    used_tokens = {
        i.token_id for i in history if i.counts and (since is None or i.received_at > since)
    }
    marked: list[Incident] = []
    for incident in new:
        counts = may_count(settings, incident) and incident.token_id not in used_tokens
        if counts:
            used_tokens.add(incident.token_id)
        marked.append(dataclasses.replace(incident, counts=counts))
    return marked


def breaker_figures(breaker: BreakerSettings, domain: DomainStats,
                    counting_now: bool) -> tuple[int, bool]:
    """The domain's distinct addresses with counting bounces in the window (this one
    included when it counts now), and whether the breaker trips now."""
    addresses = domain.recent_addresses + (
        1 if counting_now and not domain.includes_this else 0)
    return addresses, not domain.tripped and addresses >= breaker.min_addresses


def decide(
    settings: PolicySettings,
    state: AddressState | None,
    history: Sequence[Incident],
    now: dt.datetime,
) -> Decision | None:
    """Unconfirm when enough counting incidents, spread over enough days, lie within the window."""
    if not history:
        return None
    evidence = counted(settings, history, state, now)
    if len(evidence) < settings.min_bounces:
        return None
    days = [i.send_day for i in evidence]
    span = (max(days) - min(days)).days
    if span < settings.min_span_days:
        return None
    first = history[0]
    rule = (
        f"{len(evidence)} counting bounces (at least {settings.min_bounces}) within "
        f"{settings.window_days} days, send days {min(days).isoformat()} to "
        f"{max(days).isoformat()} span {span} days (at least {settings.min_span_days})"
    )
    return Decision(
        subject=first.subject,
        fingerprint=first.fingerprint,
        action="unconfirm",
        rule=rule,
        decided_at=now,
        evidence=tuple(i.evidence() for i in evidence),
    )


def with_incident_ids(plan: Plan, ids: Sequence[int]) -> Plan:
    """The plan whose decision's evidence names its new incidents by the ids the store gave
    them (``ids``: the plan's incidents' ids, in order): the decision was drawn up before
    they were stored, when their id was still None."""
    if plan.decision is None or not plan.incidents:
        return plan
    stored = {_key(i.evidence()): n for i, n in zip(plan.incidents, ids[-len(plan.incidents):],
                                                    strict=True)}
    evidence = tuple(e if e.get("id") is not None else {**e, "id": stored.get(_key(e))}
                     for e in plan.decision.evidence)
    return dataclasses.replace(plan, decision=dataclasses.replace(plan.decision,
                                                                  evidence=evidence))


def _key(evidence: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in evidence.items() if k != "id"))
