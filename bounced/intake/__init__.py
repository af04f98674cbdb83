"""The ways in: SMTP (``smtp``), HTTP ingest (``bounced.api.server``) and the pipe (``pipe``), each
ending in a durable commit before the sender is told yes (``commit``), within the
storage limits per client (``limits``)."""
