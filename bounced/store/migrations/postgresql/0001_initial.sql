-- Stored messages are jobs: pending -> processing -> done | failed | quarantined.
CREATE TABLE messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     TIMESTAMPTZ NOT NULL,
    peer            TEXT        NOT NULL DEFAULT '',
    mail_from       TEXT        NOT NULL DEFAULT '',
    rcpt_to         TEXT        NOT NULL,
    subject         TEXT        NOT NULL,
    stream          TEXT,
    key_id          TEXT        NOT NULL,
    send_day        DATE        NOT NULL,
    fingerprint     TEXT        NOT NULL,
    token_id        TEXT        NOT NULL,
    size            INTEGER     NOT NULL,
    raw             BYTEA,
    state           TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    claimed_by      TEXT,
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    kind            TEXT,
    classification  JSONB,
    processed_at    TIMESTAMPTZ,
    raw_purged_at   TIMESTAMPTZ
);
-- Claims: due pending jobs in order; expired leases (few rows: only jobs being processed).
CREATE INDEX messages_runnable ON messages (state, next_attempt_at);
CREATE INDEX messages_claimed ON messages (claimed_until) WHERE state = 'processing';
CREATE INDEX messages_subject ON messages (subject);
-- Retention: only messages whose raw body is still kept.
CREATE INDEX messages_raw_received ON messages (received_at) WHERE raw IS NOT NULL;

CREATE TABLE incidents (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   BIGINT      NOT NULL REFERENCES messages (id),
    subject      TEXT        NOT NULL,
    fingerprint  TEXT        NOT NULL,
    address      TEXT        NOT NULL,
    token_id     TEXT        NOT NULL,
    send_day     DATE        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    kind         TEXT        NOT NULL,
    action       TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    reply_code   TEXT        NOT NULL,
    reason       TEXT        NOT NULL,
    hard         BOOLEAN     NOT NULL,
    counts       BOOLEAN     NOT NULL,
    diagnostic   TEXT        NOT NULL,
    remote_mta   TEXT        NOT NULL,
    UNIQUE (message_id, address)
);
-- The history of one address, newest first, is the hot path of every processed bounce.
CREATE INDEX incidents_address ON incidents (subject, fingerprint, received_at);
CREATE INDEX incidents_received ON incidents (received_at);

CREATE TABLE addresses (
    subject        TEXT        NOT NULL,
    fingerprint    TEXT        NOT NULL,
    address        TEXT        NOT NULL DEFAULT '',
    state          TEXT        NOT NULL DEFAULT 'confirmed',
    changed_at     TIMESTAMPTZ,
    reconfirmed_at TIMESTAMPTZ,
    PRIMARY KEY (subject, fingerprint)
);
CREATE INDEX addresses_fingerprint ON addresses (fingerprint);

CREATE TABLE decisions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject     TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    rule        TEXT        NOT NULL,
    evidence    JSONB       NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX decisions_address ON decisions (subject, fingerprint, decided_at);
