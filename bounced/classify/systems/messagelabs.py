"""Symantec Email Security.cloud (MessageLabs): a filtering service in front of (and
behind) its customers' mail servers."""

from bounced.classify.systems import System

SYSTEM = System(name="messagelabs", hosts=("messagelabs.com",), filtering=True)
