"""cPanel's Exim: its answer when the recipient's domain cannot be routed (it goes on to
guess at blocklists and DNS: the domain's absence is what it knows)."""

from bounced.classify.systems import System

SYSTEM = System(
    name="cpanel",
    phrases=(
        ("hostunknown/unroutable", ("account or domain may not exist",)),
    ),
)
