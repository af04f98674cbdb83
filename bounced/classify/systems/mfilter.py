"""m-FILTER (Digital Arts), a mail filtering gateway: its reports carry
``X-Mailer: m-FILTER``."""

from bounced.classify.systems import System

SYSTEM = System(name="m-filter", markers=(("x-mailer", "m-filter"),), filtering=True)
