"""The ways in: SMTP (``bounced.smtp``), HTTP ingest (``bounced.http``) and the pipe (``pipe``),
each ending in a durable commit before the sender is told yes (``commit``), within the
storage limits per client (``limits``)."""
