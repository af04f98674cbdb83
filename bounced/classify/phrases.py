"""Phrase tables: what a diagnostic says, mapped to a reason.

Data only. Each entry is (reason, phrases); phrases are lowercase substrings matched
against the normalised diagnostic text. The first entry with a match wins, so more
specific reasons come before general ones (a blocklisted IP before "user unknown", a
full mailbox before a generic rejection). Keep phrases general: a phrase that only one
message in the world would contain is overfitting.
"""

from __future__ import annotations

PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("filtered", (
        ": : user unknown", "550 : user unknown", "recipient preferences",
        "refused due to recipient",
        "rejected by recipient", "recipient has blocked", "blocked by recipient",
    )),
    ("virusdetected", (
        "virus", "malware", "infected", "trojan", "worm detected",
    )),
    ("requireptr", (
        "reverse dns", "reverse-dns", "reverse lookup", "reverse hostname", "rdns",
        "ptr record", "no ptr", "ptr lookup", "ptr-record", "no reverse",
        "cannot find your hostname",
        "cannot find your reverse", "your hostname", "client host name", "hostname lookup failed",
        "does not resolve to", "unresolvable", "ip name lookup failed", "not resolve your address",
        "reverse mapping", "no dns record for your ip", "dns name of your ip",
    )),
    ("authfailure", (
        "spf", "dkim", "dmarc", "sender policy framework", "not authorized to send on behalf",
        "domain owner has published", "authentication check",
    )),
    ("failedstarttls", (
        "starttls", "support tls", "supports tls", "tls required", "must use tls",
        "requires tls", "encryption required",
        "tls is required", "tls negotiation failed",
    )),
    ("badreputation", (
        "reputation", "low sender score",
    )),
    ("blocked", (
        "blocked using", "listed in", "blacklist", "blocklist", "block list", "black list",
        "spamhaus", "spamcop", "sorbs", "dnsbl", "rbl", "barracuda", "abuseat", "uceprotect",
        "your ip", "your ip address", "client host rejected", "host rejected", "ip blocked",
        "ip address blocked", "connection refused by", "refused to talk to me",
        "access denied", "is not allowed to send", "not allowed to connect", "banned",
        "has been blocked", "have been blocked", "was blocked", "blocked by", "is blocked",
        "temporarily deferred", "dynamic ip", "dial-up", "dialup", "residential", "helo",
        "ehlo", "not accepting connections from", "mail from your ip", "rejected because of ip",
        "connection rejected", "sender ip", "relay not allowed for this ip",
        "mail server is not authorized", "service unavailable; client host",
        "not authorized to send mail", "too many bad recipients from your ip",
    )),
    ("ratelimited", (
        "too many connections", "too many concurrent", "connection rate", "connection limit",
        "too many simultaneous", "too many sessions", "max connections", "maximum connections",
        "too many smtp sessions", "concurrent connections",
    )),
    ("speeding", (
        "too many recipients this hour", "rate limit", "ratelimit", "rate-limit",
        "sending rate", "too fast",
        "throttl",
        "unusual rate", "too many messages from", "rate that prevents",
        "receiving mail at a rate", "exceeded the rate",
    )),
    ("spamdetected", (
        "spam", "junk mail", "unsolicited", "bulk mail", "message content rejected",
        "content rejected", "scored too high", "suspicious content", "phish",
    )),
    ("norelaying", (
        "relay access denied", "relaying denied", "relay denied", "relay not permitted",
        "relaying not permitted", "unable to relay", "not permitted to relay", "we do not relay",
        "relaying not allowed", "relay not allowed", "not a gateway", "no relaying",
        "relaying mail to", "does not relay", "cannot relay",
    )),
    ("mailboxfull", (
        "mailbox full", "mailbox is full", "mailbox was full", "over quota", "overquota",
        "quota exceeded", "exceeded quota", "exceeds quota", "quota exceed", "over the quota",
        "exceeded storage", "exceeds storage", "mailbox size limit", "full mailbox",
        "mailbox has exceeded", "mailbox exceeded", "storage quota", "account is full",
        "inbox is full", "mailfolder is full", "quota full", "disk quota", "user is over",
        "too many messages in", "mailbox is over", "storage limit", "out of storage",
        "insufficient storage", "space not enough", "not enough space on the mailbox",
        "mail box full", "quota", "mailbox full", "容量",
    )),
    ("suspend", (
        "account disabled", "account has been disabled", "account is disabled",
        "mailbox disabled", "mailbox is disabled", "mailbox has been disabled", "suspended",
        "inactive", "deactivated", "disabled", "account expired", "account is locked",
        "account locked", "not active", "temporarily unavailable mailbox", "frozen",
        "mailbox unavailable or inactive", "on hold",
    )),
    ("hasmoved", (
        "has moved", "has been moved", "address has changed", "no longer valid, please use",
        "moved to", "new address",
    )),
    ("expired", (
        "delivery time expired", "retry timeout exceeded", "message expired", "queue lifetime",
        "too long in queue", "cannot send message for", "could not be delivered for",
        "could not be delivered within", "retry time not reached", "delivery expired",
        "giving up", "has been delayed", "was not delivered within", "retry period",
        "maximum time", "too long", "expired",
    )),
    ("hostunknown", (
        "host unknown", "unknown host", "host not found", "domain not found", "no such domain",
        "domain does not exist", "domain doesn't exist", "name or service not known",
        "host or domain name not found", "unrouteable mail domain", "domain name not found",
        "nxdomain", "unknown domain", "couldn't find any host", "could not find any host",
        "no mx", "mx lookup", "invalid domain", "domain is not valid", "not a valid domain",
        "unresolvable domain", "host name lookup failure", "domain unknown",
        "unable to resolve", "no such host", "non-existent domain",
        "nonexistent domain", "domain lookup failed", "dns lookup failed",
    )),
    ("notaccept", (
        "does not accept mail", "not accepting mail", "null mx", "accepts no mail",
        "no mail accepted", "does not receive mail", "domain does not accept",
        "not accept any mail", "accept no mail",
    )),
    ("systemfull", (
        "system full", "insufficient system storage", "out of disk", "disk full",
        "mail system full", "no space left",
    )),
    ("emailtoolarge", (
        "message too large", "message too big", "message is too large", "message is too big",
        "message size exceeds", "exceeds maximum message size", "message size limit",
        "size limit", "too large", "too big", "message length exceeds", "size exceeds",
        "mail size",
    )),
    ("exceedlimit", (
        "exceeds limit", "exceeded limit", "limit exceeded", "too many recipients",
        "header size exceeds", "too many hops",
    )),
    ("rejected", (
        "sender rejected", "sender address rejected", "domain of sender", "sender verify",
        "sender verification", "mail from", "envelope sender", "sender domain",
        "sender is", "sender address", "invalid sender", "sender unknown", "unknown sender",
        "bad sender", "return path", "return-path", "senders", "address rejected",
        "permission to post", "refused", "not allowed", "rejected", "denied",
    )),
    ("userunknown", (
        "user unknown", "unknown user", "no such user", "user not found", "unknown recipient",
        "recipient unknown", "no such mailbox", "mailbox not found", "does not exist",
        "doesn't exist", "does not exists", "not exist", "invalid recipient", "unrouteable address",
        "no mailbox", "account does not exist", "invalid mailbox", "no such recipient",
        "recipient not found", "unknown local part", "unknown address", "address unknown",
        "user doesn't", "not a valid mailbox", "mailbox unavailable", "no such account",
        "bad destination mailbox", "undeliverable address", "recipient rejected",
        "not found", "is not a known user", "unknown or illegal alias", "user not known",
        "non-existent", "nonexistent", "no such person", "not have an account",
        "address not found", "invalid address", "mailbox not available", "unknown mailbox",
        "no account", "not our customer", "not listed in", "not a valid user",
        "recipient is not", "mailbox is unavailable", "user invalid", "no valid recipients",
        "no such address", "unknown account",
    )),
    ("filtered", (
        "filter", "refuses", "rejected by recipient", "recipient refused", "blocked the sender",
        "not authorized", "delivery not authorized", "message refused", "recipient does not accept",
    )),
    ("policyviolation", (
        "policy", "prohibited", "not permitted", "violat", "restricted",
    )),
    ("contenterror", (
        "content", "mime", "attachment", "file type", "8bit", "8-bit", "charset",
    )),
    ("notcompliantrfc", (
        "rfc 5322", "rfc5322", "rfc 2822", "rfc2822", "rfc 822", "rfc822 compliant",
        "duplicate header", "multiple", "not compliant",
    )),
    ("syntaxerror", (
        "syntax error", "command unrecognized", "bad command", "unrecognized command",
        "invalid command", "command not recognized",
    )),
    ("mailererror", (
        "mailer error", "command failed", "program failed", "procmail", "exit code",
        "command died", "pipe to", "unknown mailer", "local delivery failed",
    )),
    ("networkerror", (
        "timed out", "timeout", "connection refused", "no route to host", "network is unreachable",
        "lost connection", "connection reset", "could not connect", "unable to connect",
        "connect to", "mail loop", "loop detected", "loops back", "routing loop",
        "connection closed", "network error", "dns error", "temporary lookup failure",
        "conversation with",
    )),
    ("systemerror", (
        "system error", "internal error", "local error", "server error", "temporary failure",
        "resources temporarily unavailable", "try again later", "temporarily unavailable",
        "system not accepting", "service unavailable", "server configuration",
    )),
)

# Text after one of these lines is the original message, quoted by a plain-text bounce.
# Where the failing SMTP command is named: a "user unknown" after DATA was a filter (the
# address was accepted at RCPT), an address reason after MAIL FROM was about the sender.
DATA_PHASE: tuple[str, ...] = (
    "end of data", "after data", ">>> data", "smtp command data", "after the data",
    "final data", "command data", "in reply to data",
)
MAIL_FROM_PHASE: tuple[str, ...] = (
    "after mail from", "in reply to mail from", ">>> mail from", "smtp command mail",
)

ORIGINAL_MARKERS: tuple[str, ...] = (
    "------ this is a copy of the message",
    "--- below this line is a copy of the message",
    "----- original message -----",
    "------ original message follows",
    "--- original message follows",
    "original message follows",
    "----- unsent message below -----",
    "----- unsent message follows -----",
    "message headers follow",
    "content-type: message/rfc822",
    "------- returned message --------",
    "----- message header follows -----",
    "this is a copy of the original message",
    "------ this is a copy of your message",
    "------------------------------ original message",
)
