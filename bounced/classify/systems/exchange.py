"""Microsoft Exchange (on premises and Online): the prose of its non-delivery reports
and the names of its resolver's codes (RecipientNotFound; RST.NotAuthorized, a
recipient's own restriction)."""

from bounced.classify.systems import System

SYSTEM = System(
    name="exchange",
    phrases=(
        ("userunknown", ("you entered couldn't be found", "you entered could not be found",
                         "recipientnotfound")),
        ("filtered/recipient", ("resolver.rst.notauthorized",)),
    ),
)
