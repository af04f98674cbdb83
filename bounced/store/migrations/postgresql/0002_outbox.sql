-- Events (the outbox) are written in the same transaction as the decision that caused
-- them; each is delivered to every configured action (one delivery row per action).
CREATE TABLE events (
    id          TEXT        PRIMARY KEY,
    type        TEXT        NOT NULL,
    subject     TEXT,
    fingerprint TEXT,
    payload     JSON        NOT NULL,  -- JSON keeps the exact text the receivers get
    occurred_at TIMESTAMPTZ NOT NULL,
    fanned_out  BOOLEAN     NOT NULL DEFAULT FALSE
);
CREATE INDEX events_unfanned ON events (occurred_at) WHERE NOT fanned_out;
CREATE INDEX events_occurred ON events (occurred_at);

CREATE TABLE deliveries (
    event_id        TEXT        NOT NULL REFERENCES events (id),
    action          TEXT        NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claimed_by      TEXT,
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, action)
);
CREATE INDEX deliveries_runnable ON deliveries (state, next_attempt_at);

-- One circuit breaker per receiving domain.
CREATE TABLE breakers (
    domain      TEXT        PRIMARY KEY,
    state       TEXT        NOT NULL,
    addresses   INTEGER     NOT NULL DEFAULT 0,
    tripped_at  TIMESTAMPTZ,
    released_at TIMESTAMPTZ
);

ALTER TABLE incidents ADD COLUMN domain TEXT NOT NULL DEFAULT '';
CREATE INDEX incidents_domain ON incidents (domain, received_at);
