"""bounced: find the addresses that are dead, from the bounces they cause."""

__version__ = "0.1.0"
