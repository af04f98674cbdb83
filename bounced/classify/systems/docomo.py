"""NTT docomo's mail servers. docomo lets its users refuse mail by sender (domain, address,
"spoofed" mail) and answers mail refused so with "550 Unknown user <addr>" at the end of
DATA, the words its RCPT TO answer gives an address that does not exist: after the
message, its "unknown user" is the recipient's filter (as a filtering gateway's is)."""

from bounced.classify.systems import System

SYSTEM = System(name="docomo", hosts=("docomo.ne.jp",), filtering=True)
