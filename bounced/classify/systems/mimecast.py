"""Mimecast: a filtering service in front of its customers' mail servers."""

from bounced.classify.systems import System

SYSTEM = System(name="mimecast", hosts=("mimecast.com", "mimecast-offshore.com"),
                filtering=True)
