"""RFC 3463 enhanced status codes mapped to reasons (data).

The key is "subject.detail" (the class digit is left out: 4 and 5 differ in whether the
failure is final, not in what failed). GENERIC lists the codes that say too little on
their own, so the diagnostic text decides.
"""

from __future__ import annotations

STATUS_REASONS: dict[str, str] = {
    "1.0": "userunknown",
    "1.1": "userunknown",
    "1.2": "hostunknown",
    "1.3": "userunknown",
    "1.4": "filtered",  # "destination mailbox address ambiguous" (RFC 3463): not unknown
    "1.5": "userunknown",
    "1.6": "hasmoved",
    "1.7": "rejected",
    "1.8": "rejected",
    "1.9": "systemerror",
    "1.10": "userunknown",
    "2.0": "filtered",
    "2.1": "filtered",
    "2.2": "mailboxfull",
    "2.3": "exceedlimit",
    "2.4": "systemerror",
    "3.0": "systemerror",
    "3.1": "systemfull",
    "3.2": "notaccept",
    "3.3": "systemerror",
    "3.4": "emailtoolarge",
    "3.5": "systemerror",
    "4.0": "networkerror",
    "4.1": "networkerror",
    "4.2": "networkerror",
    "4.3": "systemerror",
    "4.4": "hostunknown",  # unable to route: no MX and no address for the domain
    "4.5": "systemfull",
    "4.6": "networkerror",
    "4.7": "expired",
    "4.14": "networkerror",
    "5.0": "syntaxerror",
    "5.1": "syntaxerror",
    "5.2": "syntaxerror",
    "5.3": "exceedlimit",
    "5.4": "syntaxerror",
    "5.5": "syntaxerror",
    "5.6": "syntaxerror",
    "6.0": "contenterror",
    "6.1": "contenterror",
    "6.2": "contenterror",
    "6.3": "contenterror",
    "6.4": "contenterror",
    "6.5": "contenterror",
    "6.6": "contenterror",
    "6.7": "contenterror",
    "6.8": "contenterror",
    "6.9": "contenterror",
    "6.10": "contenterror",
    "7.0": "securityerror",
    "7.1": "securityerror",
    "7.2": "securityerror",
    "7.3": "securityerror",
    "7.4": "securityerror",
    "7.5": "securityerror",
    "7.6": "securityerror",
    "7.7": "securityerror",
    "7.8": "securityerror",
    "7.9": "securityerror",
    "7.10": "failedstarttls",
    "7.11": "failedstarttls",
    "7.12": "securityerror",
    "7.13": "suspend",
    "7.14": "securityerror",
    "7.15": "securityerror",
    "7.16": "securityerror",
    "7.17": "hasmoved",
    "7.18": "hasmoved",
    "7.19": "securityerror",
    "7.20": "authfailure",
    "7.21": "authfailure",
    "7.22": "authfailure",
    "7.23": "authfailure",
    "7.24": "authfailure",
    "7.25": "requireptr",
    "7.26": "authfailure",
    "7.27": "notaccept",
    "7.28": "badreputation",
    "7.29": "securityerror",
    "7.30": "securityerror",
}

# Codes that name another reason in a temporary failure (class 4) than in a permanent
# one: X.3.2 "system not accepting network messages" is the mailbox's host closed for now
# (shutdown, load, maintenance: RFC 3463, "useful only as a persistent transient error",
# the status of a 421 "Service not available"); permanent, the domain accepts no mail.
TRANSIENT_REASONS: dict[str, str] = {
    "3.2": "systemerror",
}

# Codes whose own meaning is weaker than almost any phrase in the diagnostic: the
# "other or undefined" detail of each subject, and the codes mail systems use for many
# different refusals (5.7.1 is spam, policy, relaying, blocklists, unknown users...).
GENERIC: frozenset[str] = frozenset(
    {"0.0", "1.0", "2.0", "2.1", "3.0", "4.0", "5.0", "6.0", "7.0", "7.1", "4.1", "4.2", "4.4",
     "3.3", "3.5", "4.3", "5.1", "5.2", "5.4", "7.7", "7.2", "7.8"}
)
