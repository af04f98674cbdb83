"""SpamExperts (N-able Mail Assure), hosts in antispamcloud.com: a filtering service."""

from bounced.classify.systems import System

SYSTEM = System(name="spamexperts", hosts=("antispamcloud.com", "spamexperts.com"),
                filtering=True)
