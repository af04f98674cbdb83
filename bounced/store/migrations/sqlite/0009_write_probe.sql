-- One row that /healthz rewrites when no message was stored lately: a health check that
-- only reads said "ok" while every write failed (a full disk, a read-only file).
CREATE TABLE write_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at REAL    NOT NULL
);
INSERT INTO write_probe (id, probed_at) VALUES (1, 0)
