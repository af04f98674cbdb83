"""The dashboard page the HTTP interface serves at ``/dashboard``: static files only.

The page reads ``/v1/stats`` (the HTTP API, tested on its own) and draws it with uPlot,
vendored under ``vendor/`` (see its README for the version and how to update it). The
files are served from this package, never from a CDN, under a Content-Security-Policy that
allows scripts, styles and requests from the daemon itself only: report fields it shows are
hostile input, and even a slip in the page's escaping could not run a script.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# URL name -> (file in this package, media type).
ASSETS = {
    "dashboard.js": ("dashboard.js", "text/javascript"),
    "dashboard.css": ("dashboard.css", "text/css"),
    "uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript"),
    "uPlot.min.css": ("vendor/uPlot.min.css", "text/css"),
}
PAGE = "index.html"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def read(name: str) -> bytes:
    """A file of this package (read once)."""
    return resources.files(__package__).joinpath(name).read_bytes()
