"""Forcepoint (formerly Websense) Email Security Cloud, whose hosts are in mailcontrol.com:
a filtering service."""

from bounced.classify.systems import System

SYSTEM = System(name="forcepoint", hosts=("mailcontrol.com",), filtering=True)
