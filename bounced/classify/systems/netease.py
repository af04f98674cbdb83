"""NetEase mail (163.com, 126.com, yeah.net): its replies carry a code of two letters, a
colon and three letters (postmaster help, help_spam_16; the list of rejection codes on
help.163.com): HL:* for the sending host, MI:* for the message and its sender, RP:* for the
recipients and relaying, DT:* for the content, WM:* for its allow lists. The code decides:
its reply's link (".../help_spam_16.htm") would otherwise read as spam."""

from bounced.classify.systems import System

SYSTEM = System(
    name="netease",
    hosts=("163.com", "126.com", "yeah.net", "188.com", "netease.com"),
    replies=(
        (r"\bhl:rep\b", "badreputation"),  # the sending IP's reputation
        # too many connections or messages from the IP, in this connection or today, too
        # many recipients in a connection or today
        (r"\bhl:(icc|ifc|irc|ipc|mep|ucc)\b", "ratelimited"),
        (r"\bmi:(sfq|ucq|ucc|dmc|stc)\b|\brp:(drc|trc)\b", "ratelimited"),
        (r"\bmi:(spf|dma)\b", "authfailure"),  # SPF, DMARC
        (r"\bmi:nhd\b", "blocked"),  # the HELO name
        # the IP on a blocklist, suspended, or not among the addresses allowed to send
        (r"\bdt:rbl\b|\bhl:(ihu|ipb)\b|\bwm:bli\b", "blocked"),
        (r"\bmi:imf\b", "notcompliantrfc"),  # the header (From:) is not well formed
        (r"\bmi:(cel|ccl)\b|\brp:(cel|ccl)\b", "syntaxerror"),  # too many wrong or extra commands
        (r"\brp:frl\b", "norelaying"),  # no relaying for anonymous senders
        (r"\brp:rcl\b", "exceedlimit"),  # recipients of one mailing over the limit
        # the sender: envelope and From: differ, or not among the users allowed to send
        (r"\bdt:sum\b|\bmi:spb\b|\bwm:blu\b", "rejected"),
    ),
)
