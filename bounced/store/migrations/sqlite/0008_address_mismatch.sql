-- An incident whose report named an address other than the one the token was signed for
-- (its fingerprint differs): the address is not recorded, and this says why.
ALTER TABLE incidents ADD COLUMN address_mismatch INTEGER NOT NULL DEFAULT 0
