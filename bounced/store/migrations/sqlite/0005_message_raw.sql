-- Raw message bodies in a table of their own. A job's row is updated at every claim and
-- finish; with its 4-6 KB body inside, each update rewrote the body too (3x the time and 7x
-- the WAL volume per job). A message keeps its body while a row here holds it; retention
-- deletes the row (and stamps messages.raw_purged_at).
CREATE TABLE message_raw (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    raw        BLOB    NOT NULL
);
INSERT INTO message_raw (message_id, raw) SELECT id, raw FROM messages WHERE raw IS NOT NULL;
ALTER TABLE messages DROP COLUMN raw
