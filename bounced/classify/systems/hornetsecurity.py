"""Hornetsecurity (and its Vade-based services): a filtering service."""

from bounced.classify.systems import System

SYSTEM = System(name="hornetsecurity", hosts=("hornetsecurity.com",), filtering=True)
