"""fml (a Japanese mailing-list manager): its notices that a post was not distributed.

fml answers a post it refuses with a notice of its own, not a DSN: "You are not a member
of this mailing list <list@example.org>", "Loop Alert: Duplicated Message-ID". The
recipient that failed is the list address the notice names; the reason is what the
notice says, from the table below (data: fml's own wording, matched in lowercase).
"""

from __future__ import annotations

import re

from bounced.classify.detectors.base import Detection, Found, normalise
from bounced.classify.parse import Mail, header

_FML = re.compile(r"(?i)^\s*fml\b")
_LIST_ADDRESS = re.compile(r"<([^\s<>@]{1,64}@[\w.-]{1,253})>")
_ORIGINAL = re.compile(r"(?im)^[ \t]*+(original mail as follows|-{3,}+[^\n]*original)")
MAX_NOTICE = 4_000

# (reason, phrases): the first entry with a phrase in the subject or the notice wins.
NOTICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("securityerror", ("security alert",)),
    ("systemerror", ("loop alert", "loop back warning", "unix from loop",
                     "duplicated message-id", "detected a loop condition",
                     "fml system error")),
    ("rejected", ("not a member", "are not member", "not member article",
                  "spam mail from a spammer is rejected", "reject mail")),
)


class FMLDetector:
    """A notice from fml (``X-MLServer: fml ...``) naming the list address it refused for."""

    name = "fml"

    def detect(self, mail: Mail) -> Detection | None:
        """Kind bounce with the list address and the notice's reason, or None."""
        if not _FML.match(header(mail.msg, "x-mlserver")):
            return None
        notice = mail.text[:MAX_NOTICE]
        cut = _ORIGINAL.search(notice)
        notice = notice[: cut.start()] if cut else notice
        said = normalise(mail.subject + "\n" + notice).lower()
        reason = next((r for r, phrases in NOTICES if any(p in said for p in phrases)), "")
        address = _LIST_ADDRESS.search(notice)
        if not reason or address is None:
            return None  # an ordinary post or a command reply, not a refusal
        line = next((ln.strip() for ln in notice.splitlines() if address.group(0) in ln), "")
        found = Found(address=address.group(1).lower(), action="failed", reason=reason,
                      diagnostic=line)
        return Detection(self.name, "bounce", [found])
