"""Exim: its wordings for what its routers and ACLs found (an unrouteable address, MX
hosts without an address, a null MX, an ACL that denies without a message)."""

from bounced.classify.systems import System

SYSTEM = System(
    name="exim",
    phrases=(
        ("policyviolation", ("administrative prohibition",)),
        ("notaccept", ("indicated no smtp service",)),
        ("hostunknown", ("unrouteable address", "mx records point to non-existent",
                         "host address lookups failed")),
    ),
)
