"""Trend Micro Email Security (and the InterScan appliances): a filtering gateway."""

from bounced.classify.systems import System

SYSTEM = System(name="trendmicro", hosts=("tmes.trendmicro.com", "tmes.trendmicro.eu",
                                          "tmes-anz.trendmicro.com", "tmes.trendmicro.co.jp"),
                filtering=True)
