"""NetEase mail (163.com, 126.com, yeah.net): its replies carry a code of two letters, a
colon and three letters (postmaster help, help_spam_16): HL:* for the sending host, MI:*
for the message."""

from bounced.classify.systems import System

SYSTEM = System(
    name="netease",
    hosts=("163.com", "126.com", "yeah.net", "188.com", "netease.com"),
    replies=(
        (r"\bhl:rep\b", "badreputation"),  # the sending IP's reputation
        (r"\bhl:(icc|irc|ipc|mep|ucc)\b", "ratelimited"),  # too many connections / messages
        (r"\bmi:(spf|dma)\b", "authfailure"),  # SPF, DMARC
        (r"\bmi:nhd\b", "blocked"),  # the HELO name
        (r"\bmi:(sfq|ucq|ucc)\b", "ratelimited"),  # the sender's rate
        (r"\bmi:imf\b", "notcompliantrfc"),  # the header (From:) is not well formed
    ),
)
