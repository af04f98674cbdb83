"""MailFoundry, a filtering appliance: the report's Received field names it
("by ... (MAILFOUNDRY) id ...")."""

from bounced.classify.systems import System

SYSTEM = System(name="mailfoundry", markers=(("received", "(mailfoundry) id"),),
                filtering=True)
