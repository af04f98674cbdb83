"""Read models shared by the CLI and the HTTP API: what operators see about an address."""

from __future__ import annotations

from typing import Any

from bounced.config import PolicySettings
from bounced.model import AddressState, Decision, Incident, bound_address
from bounced.policy.events import evidence
from bounced.policy.rule import COUNTING_KIND, may_count
from bounced.store import Store
from bounced.verp import fingerprint


def state_json(s: AddressState, incidents: list[Incident], decisions: list[Decision]
               ) -> dict[str, Any]:
    # Addresses only where they are the token's (rows recorded before that was checked may
    # hold another): the same rule as the events'.
    return {
        "subject": s.subject, "fingerprint": s.fingerprint,
        "address": bound_address(s.address, s.fingerprint),
        "state": s.state, "changed_at": s.changed_at.isoformat() if s.changed_at else None,
        "reconfirmed_at": s.reconfirmed_at.isoformat() if s.reconfirmed_at else None,
        "decisions": [{"id": d.id, "action": d.action, "rule": d.rule,
                       "decided_at": d.decided_at.isoformat(),
                       "evidence": [{**item, **guarded} for item, guarded in zip(
                           d.evidence, evidence(d.evidence, s.fingerprint), strict=True)]}
                      for d in decisions],
        "incidents": [i.evidence() for i in incidents],
    }


async def address_details(
    store: Store, subject: str | None, address: str | None
) -> tuple[str | None, list[tuple[AddressState, list[Incident], list[Decision]]]]:
    """(fingerprint queried, [(state, incidents newest first, decisions newest first)])."""
    fp = fingerprint(address) if address else None
    states = await store.address_states(subject=subject, fingerprint=fp)
    return fp, [(s, await store.incidents(s.subject, s.fingerprint),
                 await store.decisions(s.subject, s.fingerprint)) for s in states]


async def address_report(store: Store, subject: str | None, address: str | None
                         ) -> dict[str, Any]:
    fp, details = await address_details(store, subject, address)
    return {
        "query": {"subject": subject, "address": address, "fingerprint": fp},
        "addresses": [state_json(s, inc, dec) for s, inc, dec in details],
    }


def counts_label(policy: PolicySettings, incident: Incident) -> str:
    """Whether an incident counts, and when it does not although its kind and reason could,
    why: "yes", "no", "no (repeat)" (its sent message counts already), "no (temporary)"."""
    if incident.counts:
        return "yes"
    if may_count(policy, incident):
        return "no (repeat)"
    if (incident.kind == COUNTING_KIND and incident.reason == "notaccept"
            and incident.reason in policy.counting_reasons):
        return "no (temporary)"
    return "no"
