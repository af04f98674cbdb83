"""ActiveHunter, an anti-spam gateway: its reports carry an ``X-AHMAILID`` field."""

from bounced.classify.systems import System

SYSTEM = System(name="activehunter", markers=(("x-ahmailid", ""),), filtering=True)
