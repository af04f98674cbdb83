"""What a classified message means for an address: the rule (``rule``: which incidents count,
when an address is unconfirmed, when a domain's breaker trips; pure), the events told to the
application (``events``; pure), and what recording an outcome means (``core``: decisions, held
decisions, breakers, events, reconfirmation, as data operations any store carries out)."""
