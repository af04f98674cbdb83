"""Courier: its esmtp client's transcript note for a command the remote never answered
("<command failed>": the connection was gone, as after a 421 that closed it, when Courier
sends its next command), a failure to talk to the host and not a local program's."""

from bounced.classify.systems import System

SYSTEM = System(
    name="courier",
    phrases=(("networkerror/session", ("<command failed>",)),),
    connect_failures=("<command failed>",),
)
