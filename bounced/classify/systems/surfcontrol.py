"""SurfControl (later Websense) E-mail Filter: a filtering gateway. Its reports carry
``X-Mailer: SurfControl E-mail Filter`` and ``X-SEF-...`` fields."""

from bounced.classify.systems import System

SYSTEM = System(name="surfcontrol", markers=(("x-mailer", "surfcontrol"),), filtering=True)
