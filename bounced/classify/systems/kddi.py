"""au (KDDI) mail servers (ezweb.ne.jp, au.com). A recipient's own refusal list is answered
with "550 : User unknown", the address left out; an address that does not exist is named
("550 <addr>: User unknown")."""

from bounced.classify.systems import System

SYSTEM = System(name="kddi", hosts=("ezweb.ne.jp", "au.com", "biz.ezweb.ne.jp"),
                replies=((r"\b550:? ?: ?user unknown", "filtered"),))
