-- The breaker's figures (distinct addresses with counting bounces at a domain, within the
-- window) read from the index alone: only counting incidents, with their fingerprints.
-- Replaces incidents_domain, which made the count look up every incident's row (2x slower).
CREATE INDEX incidents_domain_counting ON incidents (domain, received_at, fingerprint)
    WHERE counts = 1;
DROP INDEX incidents_domain
