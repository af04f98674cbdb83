-- The operator's summary (bounced stats, GET /v1/stats, the dashboard) counts a period's
-- incidents by day, kind, reason and receiving domain. With these columns in the index it
-- can read the index alone (an index-only scan, where autovacuum has set the visibility map)
-- instead of every incident's row (bench/overview_bench.py). It replaces the received_at
-- index it extends (retention's range scan uses it as before): recording an incident writes
-- no more indexes.
DROP INDEX incidents_received;
CREATE INDEX incidents_received ON incidents (received_at)
    INCLUDE (kind, reason, counts, domain, fingerprint);
-- Events of some types newest first (bounced events --type, GET /v1/events), in index order
-- (events_occurred serves the list of all types). One event per decision: cheap to keep.
CREATE INDEX events_type ON events (type, occurred_at);
