-- The host that wrote the delivery status report (DSN Reporting-MTA), for the evidence.
ALTER TABLE incidents ADD COLUMN reporting_mta TEXT NOT NULL DEFAULT '';
