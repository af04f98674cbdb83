"""Cisco Secure Email (IronPort; its cloud service's hosts are in iphmx.com): a filtering
gateway."""

from bounced.classify.systems import System

SYSTEM = System(name="cisco", hosts=("iphmx.com",), filtering=True)
