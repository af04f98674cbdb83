"""McAfee Email Gateway (formerly Secure Computing IronMail, MX Logic): a filtering gateway.
Its reports carry ``X-NAI-Header: Modified by McAfee ...``."""

from bounced.classify.systems import System

SYSTEM = System(name="mcafee", hosts=("mxlogic.net", "mcafee.com"),
                markers=(("x-nai-header", "mcafee"),), filtering=True)
