"""Prometheus metrics, one registry per daemon (so tests can run several in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("bounced_messages_accepted", "Messages stored durably",
                                ["via"], registry=r)
        self.rejected = Counter("bounced_messages_rejected",
                                "Recipients or messages refused, by reason", ["reason"],
                                registry=r)
        self.classified = Counter("bounced_messages_classified",
                                  "Processed messages by kind", ["kind"], registry=r)
        self.classify_failures = Counter(
            "bounced_classify_failures", "Readers of the classifier that raised on a message "
            "(a bug: the message is still classified by the others)", ["reader"], registry=r)
        self.incidents = Counter("bounced_incidents", "Incidents recorded, by reason and "
                                 "whether they count", ["reason", "counts"], registry=r)
        self.decisions = Counter("bounced_decisions", "Decisions by action", ["action"],
                                 registry=r)
        self.deliveries = Counter("bounced_action_deliveries", "Event deliveries by action "
                                  "and result", ["action", "result"], registry=r)
        self.dead_letters = Counter("bounced_action_dead_letters", "Events that could not be "
                                    "delivered in time (alert)", ["action"], registry=r)
        self.breakers = Counter("bounced_breaker_trips", "Domain breakers tripped", registry=r)
        self.queue = Gauge("bounced_queue_jobs", "Stored messages by job state", ["state"],
                           registry=r)
        self.outbox = Gauge("bounced_outbox_deliveries", "Event deliveries by state",
                            ["state"], registry=r)
        self.in_flight = Gauge(
            "bounced_intake_in_flight_bytes", "Bytes of messages being received and not yet "
            "stored ([limits] in_flight_bytes bounds them)", registry=r)
        self.processing = Histogram(
            "bounced_processing_seconds", "Time to classify and record one message",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
