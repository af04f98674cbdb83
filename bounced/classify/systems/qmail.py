"""qmail (and vpopmail): its rcpthosts and badrcptto refusals, a closed address, and an
MX that points back at the reporting host."""

from bounced.classify.systems import System

SYSTEM = System(
    name="qmail",
    phrases=(
        ("norelaying", ("allowed rcpthost",)),
        ("userunknown", ("badrcptto", "address no longer accepts mail")),
        ("networkerror", ("listed as a best-preference mx or a for that host",)),
    ),
)
