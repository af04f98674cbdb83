"""Mimecast: a filtering service in front of its customers' mail servers, and its own
replies for the account it serves (Mimecast SMTP error codes, community.mimecast.com
DOC-1369), which hold only for its hosts."""

from bounced.classify.systems import System

SYSTEM = System(
    name="mimecast", hosts=("mimecast.com", "mimecast-offshore.com"), filtering=True,
    replies=(
        # too many concurrent inbound connections for the customer's account
        (r"account service is temporarily unavailable", "ratelimited"),
        # the customer's account takes no inbound mail (for now: a 4xx)
        (r"account inbounds disabled", "notaccept"),
    ),
)
