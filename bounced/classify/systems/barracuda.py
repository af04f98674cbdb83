"""Barracuda Email Security (appliance and its cloud service): a filtering gateway."""

from bounced.classify.systems import System

SYSTEM = System(name="barracuda", hosts=("barracudanetworks.com", "ess.barracuda.com"),
                filtering=True)
