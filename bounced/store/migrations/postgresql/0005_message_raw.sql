-- Raw message bodies in a table of their own. A job's row is updated at every claim and
-- finish; with its body inside, each update wrote a new version of the whole row. A message
-- keeps its body while a row here holds it; retention deletes the row (and stamps
-- messages.raw_purged_at). Dropping messages.raw drops messages_raw_received with it: the
-- retention scan now reads message_raw, which holds only the kept bodies.
CREATE TABLE message_raw (
    message_id BIGINT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    raw        BYTEA  NOT NULL
);
INSERT INTO message_raw (message_id, raw) SELECT id, raw FROM messages WHERE raw IS NOT NULL;
ALTER TABLE messages DROP COLUMN raw;
