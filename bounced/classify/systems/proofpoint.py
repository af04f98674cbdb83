"""Proofpoint (on-premises and its hosted service, pphosted.com): a filtering gateway."""

from bounced.classify.systems import System

SYSTEM = System(name="proofpoint", hosts=("pphosted.com", "ppe-hosted.com", "proofpoint.com"),
                filtering=True)
