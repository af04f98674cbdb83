-- Stored messages are jobs: pending -> processing -> done | failed | quarantined.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at     REAL    NOT NULL,
    peer            TEXT    NOT NULL DEFAULT '',
    mail_from       TEXT    NOT NULL DEFAULT '',
    rcpt_to         TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    stream          TEXT,
    key_id          TEXT    NOT NULL,
    send_day        TEXT    NOT NULL,
    fingerprint     TEXT    NOT NULL,
    token_id        TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    raw             BLOB,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    claimed_by      TEXT,
    claimed_until   REAL,
    last_error      TEXT,
    kind            TEXT,
    classification  TEXT,
    processed_at    REAL,
    raw_purged_at   REAL
);
CREATE INDEX messages_runnable ON messages (state, next_attempt_at);
CREATE INDEX messages_subject ON messages (subject);
CREATE INDEX messages_received ON messages (received_at);

CREATE TABLE incidents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE SET NULL,
    subject      TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    token_id     TEXT    NOT NULL,
    send_day     TEXT    NOT NULL,
    received_at  REAL    NOT NULL,
    kind         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    reply_code   TEXT    NOT NULL,
    reason       TEXT    NOT NULL,
    hard         INTEGER NOT NULL,
    counts       INTEGER NOT NULL,
    diagnostic   TEXT    NOT NULL,
    remote_mta   TEXT    NOT NULL,
    UNIQUE (message_id, address)
);
CREATE INDEX incidents_address ON incidents (subject, fingerprint, received_at);
CREATE INDEX incidents_received ON incidents (received_at);

CREATE TABLE addresses (
    subject        TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    address        TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL DEFAULT 'confirmed',
    changed_at     REAL,
    reconfirmed_at REAL,
    PRIMARY KEY (subject, fingerprint)
);
CREATE INDEX addresses_fingerprint ON addresses (fingerprint);

CREATE TABLE decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    subject     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    action      TEXT NOT NULL,
    rule        TEXT NOT NULL,
    evidence    TEXT NOT NULL,
    decided_at  REAL NOT NULL
);
CREATE INDEX decisions_address ON decisions (subject, fingerprint, decided_at);
