"""The job queue's consumer: claim stored messages, classify them, record what they mean
through ``bounced.policy.core``, retry or quarantine (``worker``); run in a process of its own
by the daemon (``process``)."""
