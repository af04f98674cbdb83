"""Telling the application: the dispatcher delivers every event of the outbox to every
configured action, at least once (``dispatch``); what an action is and the kinds there are
(``actions``)."""
