-- One body per DATA transaction, referenced by the message of every recipient it was
-- accepted for: a body sent to fifty recipients was stored fifty times (a 10 MB message
-- with one token fifty times grew the database by 500 MB). A message keeps its body while
-- body_id names it; retention drops a body once every message of it is done and old, sets
-- their body_id to NULL and stamps raw_purged_at. Existing bodies keep their message's id.
CREATE TABLE bodies (
    id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    raw BYTEA  NOT NULL
);
INSERT INTO bodies (id, raw) OVERRIDING SYSTEM VALUE
    SELECT message_id, raw FROM message_raw ORDER BY message_id;
SELECT setval(pg_get_serial_sequence('bodies', 'id'),
              COALESCE((SELECT MAX(id) FROM bodies), 0) + 1, false);
ALTER TABLE messages ADD COLUMN body_id BIGINT REFERENCES bodies (id);
UPDATE messages SET body_id = id WHERE id IN (SELECT id FROM bodies);
CREATE INDEX messages_body ON messages (body_id);
DROP TABLE message_raw;
