"""Line shapes and wording of plain-text bounces (data for the text detector)."""

from __future__ import annotations

import re

from bounced.classify.literals import required

# A local part is a dot-atom or a quoted string (RFC 5321: "first..last"@example.org).
_ADDR = (r"(?P<addr>(?:\"[^\"\\\n]{1,64}\"|[\w.!#$%&'*+/=?^`{|}~-]{1,64})"
         r"@[\w.-]{1,255})")
_A = r"(?<![\w.!#$%&'*+/=?^`{|}~-])" + _ADDR  # not the tail of a longer word
_MAILTO = r"(?:mailto:)?"  # an address written as a link ("<mailto:addr>")

# A line naming a failed recipient; the first pattern that matches a line is used.
_RECIPIENT_SOURCES = (
    # alone on its line (qmail, Exim), in brackets, or as "addr" <addr> (a display name
    # that is the address itself, as Exchange's CDO writes it)
    # (each run of spaces is possessive: a run of spaces split between two quantifiers
    # in every possible way was the quadratic backtracking of a hostile line)
    # (Outlook's "addr<mailto:addr>" too)
    rf"^\s*+[*\-]{{0,3}}\s*+(?:\"[^\"\n]{{0,100}}\"\s*+)?[<\"'\[]?{_MAILTO}{_A}"
    rf"(?:<mailto:[^<>\s]{{1,320}}>)?[>\"'\]]?\s*+[:.,]?\s*+$",
    rf"^\s*>>>\s*<?{_A}",  # >>> addr <addr> (Sendmail-style list of failed addresses)
    # <addr>: reason / <addr>... reason (Postfix, Sendmail)
    rf"^\s*<{_MAILTO}{_A}>\s*(?:[:.]|\(|\.\.\.|\s)",
    # the address first on its line, then what became of it: "addr: reason", "addr on
    # DATE" (Exchange), "* [addr]: reason" (a bulleted list)
    # ('addr' on DATE: Outlook; the quote opening it is read as part of the local part)
    rf"^\s*+(?:[*\-]\s*+)?[\[<\"]?{_MAILTO}{_A}[\]>\"']?"
    r"(?::\s|:$|\.\.\.|\(|\s++(?::\s|\.\.\.|\(|on\s|-\s))",
    # ... or any words ("addr [reason]", "addr Invalid Address, ERROR_CODE :550", a
    # table's row "addr   550 5.1.1 User unknown"): only at the start of a list (the
    # scanner checks the line above: blank, a banner ending with a colon or a rule of
    # dashes, or another recipient's line), not in wrapped prose; not "addr <other>"
    # (a display name and the address it names)
    rf"^\s*+(?:[*\-]\s*+)?[\[<\"]?{_MAILTO}{_A}[\]>\"']?\s++(?=[^\s<])(?P<listed>)",
    # a display name, then the address in parentheses, alone on its line and in a list as
    # above ("Jana Kral (jana@example.org)" under "Delivery has failed to these
    # recipients:"), not a sentence that ends with an address
    rf"^\s*+[^@<>()\":\n]{{1,60}}\(\s*+{_MAILTO}{_A}\s*+\)\s*+$(?P<listed>)",
    rf"\brcpt to:\s*<{_A}>",
    # a label, then the address (bare, bracketed, quoted, or as Exchange's "[SMTP:addr]")
    rf"\b(?:recipient|address|addressed to|addressed,|delivered to|deliver to|failed to|"
    rf"original-recipient|final-recipient|userid|user|mailbox|to|delivery failed|failed)\s*"
    rf"(?:address(?:es)?|\(s\))?\s*:?\s*(?:rfc822;)?\s*(?:\[?smtp:)?<?{_MAILTO}'?\"?{_A}",
    # an X.400 O/R address whose domain-defined attribute is the Internet address
    # ("c=US;a= ;p=Org;o=Site;dda:SMTP=addr;", Exchange 5.5's Internet Mail Service)
    r"^\s*c=[^@\n]{0,200}?\bdda:smtp=" + _ADDR,
    # the address an undisclosed one was generated from (Exim: "an undisclosed address /
    # (generated from addr)"; the scanner keeps it only under a line that names no address)
    rf"^\s*\((?:ultimately )?generated from {_A}\)",
    # the same labels in the languages of providers' own reports (a full-width colon in
    # Chinese and Japanese), and "(message sent / not delivered) to addr" in their prose
    r"(?:收件人|收信人|宛先|受信者|받는\s?사람|수신자|받는이|адресат|получатель|destinatario|"
    r"destinatário|destinataire|empfänger|empfaenger|adresat|odbiorca|příjemce|alıcı|alici|"  # noqa: RUF001
    rf"ontvanger)\s*[:\uff1a]\s*<?{_A}",
    rf"\b(?:remis à|remise à|envoyé à|inviato a|inviata a|enviada para|enviado para|"
    rf"enviada a|enviado a)\s+<?{_A}",
    # a label naming recipients or addresses, then a colon ("The following recipients
    # returned permanent errors: addr")
    rf"\b(?:recipients|addresses)\b[^:@\n]{{0,60}}:\s*<?{_A}",
    # the reason, then the address ("User mailbox exceeds allowed size: addr")
    rf"^(?P<lead>[^:@<>]{{4,80}}):\s*<?{_A}>?\s*$",
    rf"^\s*\d{{3}}[ -]+(?:\d\.\d{{1,3}}\.\d{{1,3}}\s+)?<{_A}>",  # 550 <addr>... (Sendmail)
)
RECIPIENT_LINES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE) for p in _RECIPIENT_SOURCES)
# The same, case-sensitive, for an ASCII line lowercased (the same matches, at the same
# places; the sources have no uppercase letter).
RECIPIENT_LINES_LOWER: tuple[re.Pattern[str], ...] = tuple(map(re.compile, _RECIPIENT_SOURCES))
_ESCAPES = re.compile(r"\\[A-Za-z]|\(\?P<")  # \w, \s, (?P<name>: no literal letters
_UPPER = re.compile(r"[A-Z]")
if any(_UPPER.search(_ESCAPES.sub("", p)) for p in _RECIPIENT_SOURCES):
    raise ValueError("a recipient line pattern has an uppercase letter")

# A recipient-shaped line right after one of these names the sender instead; an address
# after an instruction ("please forward this message to delist@...", "report details to
# abuse@...", "contact ...", "send an email to ...", but not "could not / failed to send an
# email to ...") is where the remote server asks to be written to, in its reply;
# after "try" ("please try <addr>", RFC 5321's 551; "try emailing to addr instead", a
# report's advice) it is another address to write to, not one that failed.
NOT_RECIPIENT_BEFORE = re.compile(
    r"(?i)(sent by|from:|sender:|envelope-from|mail from|return-path|reply-to|"
    r"message-id|received:|\bby\b[^\n]{0,200}?\bwith\b|"
    r"\b(?:forward|report|complain|write)\b[^\n@]{0,60}?\bto|\bcontact(?:ing)?\b(?: us)?(?: at)?|"
    r"\btry\b(?:[^\n@]{0,40}?\bto)?|"
    r"(?<!not )(?<!to )\bsend (?:an? )?e-?mail to|\be-?mail us(?: at)?)[\s:<\"'(]*+$"
)

BOUNCE_FROM = re.compile(
    r"(?i)mailer-daemon|post_?master|mail ?delivery|mail administrator|mail system|"
    r"mailer@|daemon@|bounce|returned|no-?reply|notify|system administrator"
)
BOUNCE_SUBJECT = re.compile(
    r"(?i)undeliver|undelivered|returned mail|return(ed)? to sender|delivery (status|fail)|"
    r"failure notice|mail delivery|delivery notification|could not be delivered|"
    r"non[- ]?deliver|failed|failure|error|not delivered|delayed|warning|bounce|"
    r"rejected|unable to deliver|no se ha podido|nicht zustellbar|non remis|不達|エラー|"
    r"не доставлено"
)
# A subject of a forwarded message (Outlook's, Gmail's, Thunderbird's, Apple Mail's
# prefixes in the languages they are localised to): its attachment is someone else's mail.
FORWARD_SUBJECT = re.compile(
    r"(?i)^\s*(?:fwd?|fw|wg|tr|rv|enc|doorst|vs|vb|pd|i|転送|转发|轉寄|전달|пересл)\s*[:\uff1a]"
)
BOUNCE_TEXT = re.compile(
    r"(?i)could not be delivered|couldn't be delivered|was not delivered|undeliverable|"
    r"unable to deliver|delivery (has )?failed|permanent(ly)? (error|fail)|"
    r"following (addresses|address|recipients?)|did not reach|delivery to the following|"
    r"not be delivered|returned to sender|error delivering|failed to deliver"
)
DELAY_TEXT = re.compile(
    r"(?i)warning message only|will (be retried|continue to|keep trying|retry)|"
    r"still (being )?(retried|trying)|has not yet been delivered|not been delivered yet|"
    r"delivery (has been |is )?delayed|temporarily deferred|do not need to resend|"
    r"will be retried|retrying|delay(ed)? (notification|warning)|still in the queue|"
    r"do not need to re-send|only a temporary failure|is kept in the queue"
)

# A delivery notice written as text (IIS/Exchange's "Your message has been successfully
# relayed to the following recipients", Exchange's "Delivery to these recipients or groups
# is complete"), read as one only when no failure word is near it (FAILURE_WORDS): a
# report of several recipients may say that some were delivered and others were not.
DELIVERED_TEXT = re.compile(
    r"(?i)successfully (relayed|delivered)|delivered successfully|successful delivery|"
    r"delivery to (these|the following) recipients (or groups )?(is complete|succeeded|"
    r"was successful)|(was|has been) delivered to (the following|these) recipients"
)
FAILURE_WORDS = re.compile(
    r"(?i)\b(?:fail|undeliver|not (?:be |been |yet )?delivered|n't be delivered|"
    r"unable to deliver|did not reach|reject|error|permanent|delay|retr(?:y|ied)|returned|"
    r"bounce|refused|unknown|not exist|invalid|denied|expired|quota|full\b)"
)

# The subject of a delay notice ("Warning: could not send message for past 4 hours",
# "Delivery Status Notification (Delay)", "WARNING: delayed mail.", "Delayed Mail (still
# being retried)") in the languages the common systems are localised to.
DELAY_SUBJECT = re.compile(
    r"(?i)delay|warning|still being retried|not yet delivered|verz[öo]ger|retard|retras|"
    r"ritard|atras|opóźni|zpožd|遅延|延迟|延遲|지연|задерж"
)

# A final failure after retries, even when its code is a 4xx: the delivery was given up.
FINAL_TEXT = re.compile(
    r"(?i)not going to try again|i've given up|have given up|giving up on|"
    r"permanent (error|failure)|permanent fatal|no further (delivery )?attempts|"
    r"will not be retried|will not try again|too long in (the )?queue|in the queue too long|"
    r"retry (time|timeout) (exceeded|expired)|delivery time expired|envelope expired|"
    r"message expired"
)

# A header field of the original as a report summarises it, one per line and perhaps
# bulleted ("  To:      list@example.org", "* Subject: ...", "  Sent:    Fri, ...").
SUMMARY_FIELD = re.compile(
    r"(?i)^\s*(?:[*\-]\s*)?(to|cc|bcc|from|subject|sent|date|received on|message-id)\s*:")

# A line that starts with an SMTP reply ("550 5.2.2 <addr>... Mailbox Full").
REPLY_LINE = re.compile(r"^[245]\d\d[ -]")

# A line that starts another recipient's story in a transcript ("550 host (smtp)... text").
DIAG_STOP = re.compile(r"^\s*\d{3} \S+ \(\w+\)\.\.\.")


# Case-insensitive searches of long texts, run as case-sensitive searches of the text
# folded to lowercase (several times faster, the same answers). ``fold`` maps each character
# to the one that re.IGNORECASE compares with a lowercase ASCII letter: str.lower, except
# for the three characters re also matches with "i" or "s" (dotted and dotless i, long s;
# str.lower would leave the last two and make the first two characters long). So a pattern
# made of lowercase ASCII literals matches ``fold(text)`` where its (?i) form matches
# ``text``, at the same positions (tests/test_classify_phrase_index.py checks both).
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s"}


def fold(text: str) -> str:
    """``text`` lowercased as re.IGNORECASE compares it with ASCII letters; same length."""
    if not text.isascii() and ("\u0130" in text or "\u0131" in text or "\u017f" in text):
        text = text.translate(_FOLD)  # slow (a lookup per character): only when needed
    return text.lower()


def _folded(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The case-sensitive form of a "(?i)" pattern of lowercase literals, for fold(text)."""
    source = pattern.pattern
    if not source.startswith("(?i)") or source != source.lower():
        raise ValueError(f"not a (?i) pattern of lowercase literals: {source[:40]!r}")
    return re.compile(source[4:])


BOUNCE_TEXT_FOLDED = _folded(BOUNCE_TEXT)
DELAY_TEXT_FOLDED = _folded(DELAY_TEXT)
FINAL_TEXT_FOLDED = _folded(FINAL_TEXT)
DELIVERED_TEXT_FOLDED = _folded(DELIVERED_TEXT)
FAILURE_WORDS_FOLDED = _folded(FAILURE_WORDS)
BOUNCE_FROM_FOLDED = _folded(BOUNCE_FROM)


def _words(pattern: re.Pattern[str]) -> tuple[str, ...]:
    words = required(pattern)
    if words is None:
        raise ValueError(f"no words every match needs: {pattern.pattern[:40]!r}")
    return words


# Words of which every match of the final / delay wordings holds one: most reports hold
# none, and a few ``in`` tests cost less than the pattern tried at every character.
_FINAL_WORDS = _words(FINAL_TEXT_FOLDED)
_DELAY_WORDS = _words(DELAY_TEXT_FOLDED)
_DELIVERED_WORDS = _words(DELIVERED_TEXT_FOLDED)


def says_final(folded: str) -> bool:
    """Whether ``folded`` (fold()ed text) says the delivery was given up (FINAL_TEXT)."""
    return any(w in folded for w in _FINAL_WORDS) and FINAL_TEXT_FOLDED.search(folded) is not None


def says_delayed(folded: str) -> bool:
    """Whether ``folded`` (fold()ed text) says the delivery is still tried (DELAY_TEXT)."""
    return any(w in folded for w in _DELAY_WORDS) and DELAY_TEXT_FOLDED.search(folded) is not None


def says_delivered(folded: str) -> bool:
    """Whether ``folded`` (fold()ed text) says the message was delivered and nothing in it
    says anything failed."""
    # (the words every match needs first; then the failure words, which a bounce holds
    # near its start, where the search for them stops)
    return (any(w in folded for w in _DELIVERED_WORDS)
            and FAILURE_WORDS_FOLDED.search(folded) is None
            and DELIVERED_TEXT_FOLDED.search(folded) is not None)


# (fold keeps every character a word character, a blank, or neither, as it was: \b and
# \s see the folded text as they see the text.)
NOT_RECIPIENT_BEFORE_FOLDED = _folded(NOT_RECIPIENT_BEFORE)
# (The subject patterns have non-ASCII letters, some of which re.IGNORECASE matches with
# letters str.lower does not map to them: their folded forms are for ASCII text only.)
BOUNCE_SUBJECT_FOLDED = _folded(BOUNCE_SUBJECT)
DELAY_SUBJECT_FOLDED = _folded(DELAY_SUBJECT)


def search_subject(caseless: re.Pattern[str], folded: re.Pattern[str], subject: str) -> bool:
    """Whether ``caseless`` (a subject pattern) matches ``subject``; an ASCII subject is
    searched lowercased with ``folded``, its case-sensitive form (several times faster)."""
    if subject.isascii():
        return folded.search(subject.lower()) is not None
    return caseless.search(subject) is not None
