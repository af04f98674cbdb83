"""Signed VERP return paths ``<prefix>-<token>@<domain>``: sign for senders, verify for the daemon.

Standard library only, so sender code can import it on its own. The format is specified in
docs/token-format.md, with test vectors in tests/vectors/tokens.json.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["InvalidToken", "Keyring", "Signer", "Token", "Verifier", "fingerprint",
           "generate_key_line"]

FORMAT_LABEL = "bounced-verp-v1"  # first line of every MAC'd message
MAX_LOCAL_PART = 64  # octets, RFC 5321 section 4.5.3.1.1
MAC_BYTES = 10  # 80 bits -> 16 base32 characters
FINGERPRINT_BYTES = 5  # 40 bits -> 8 base32 characters
DAY_CHARS = 4  # 20 bits of days since 1970-01-01 -> until the year 4840
MIN_SECRET_BYTES = 16
EPOCH = dt.date(1970, 1, 1)
MAX_DAY = 32**DAY_CHARS - 1
B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lowercase, never padded

_KEY_ID = re.compile(r"[a-z0-9]{1,8}")
_NAME = re.compile(r"[a-z0-9-]+")  # prefix and stream
_LITERAL = re.compile(r"[a-z0-9][a-z0-9-]*")  # a subject carried as itself
_ENCODED = re.compile(r"-[a-z2-7]+")  # "-" + base32(UTF-8): any other subject
_TAIL = re.compile(r"([a-z0-9]{1,8})([a-z2-7]{4})([a-z2-7]{8})([a-z2-7]{16})")
_WHITESPACE = " \t\r\n\x0b\x0c"

REASONS = ("malformed", "wrong-domain", "unknown-key", "bad-signature", "expired", "future")


class InvalidToken(ValueError):
    """An address is not a valid return path; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def fingerprint(address: str) -> str:
    """base32(SHA-256(address stripped of ASCII whitespace, lowercased)[:5]): 8 characters."""
    normalised = address.strip(_WHITESPACE).lower()
    return _b32(hashlib.sha256(normalised.encode("utf-8")).digest()[:FINGERPRINT_BYTES])


def encode_subject(subject: str) -> str:
    """The form a subject takes in the token: itself if it is plain, else "-" + base32(UTF-8)."""
    if not subject:
        raise ValueError("subject must not be empty")
    if _LITERAL.fullmatch(subject):
        return subject
    try:
        return "-" + _b32(subject.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"subject {subject!r} cannot be encoded as UTF-8") from None


def decode_subject(carried: str) -> str:
    """The subject from its carried form; InvalidToken("malformed") if it is not canonical."""
    if _LITERAL.fullmatch(carried):
        return carried
    if _ENCODED.fullmatch(carried):
        data = carried[1:]
        try:
            subject = base64.b32decode(data.upper() + "=" * (-len(data) % 8)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            subject = ""
        if subject and _b32(subject.encode("utf-8")) == data and not _LITERAL.fullmatch(subject):
            return subject
    raise InvalidToken("malformed", "subject part is not a valid subject encoding")


def _day_number(day: dt.date) -> int:  # days since 1970-01-01
    n = day.toordinal() - EPOCH.toordinal()
    if not 0 <= n <= MAX_DAY:
        raise ValueError(f"day {day.isoformat()} is outside 1970-01-01 .. year 4840")
    return n


@dataclass(frozen=True)
class Token:
    """The fields of a return-path token (decoded; ``subject`` as the application gave it)."""

    key_id: str
    day: dt.date
    subject: str
    stream: str | None
    fingerprint: str
    mac: str

    @property
    def token_id(self) -> str:
        """The canonical token string: the local part after "<prefix>-"."""
        return self.unsigned + self.mac

    @property
    def unsigned(self) -> str:
        """The token string without its MAC."""
        stream = f".{self.stream}" if self.stream is not None else ""
        day = "".join(B32[(_day_number(self.day) >> shift) & 31] for shift in (15, 10, 5, 0))
        return f"{encode_subject(self.subject)}{stream}.{self.key_id}{day}{self.fingerprint}"

    def age_days(self, today: dt.date) -> int:
        """Days from the issue day to ``today`` (negative if the token is dated later)."""
        return (today - self.day).days

    def mac_message(self, prefix: str) -> bytes:
        """Exactly the bytes the MAC covers (docs/token-format.md, "What is signed")."""
        fields = (FORMAT_LABEL, prefix, self.key_id, str(_day_number(self.day)),
                  encode_subject(self.subject), self.stream or "", self.fingerprint)
        return "\n".join(fields).encode("ascii")


def compute_mac(key: bytes, prefix: str, token: Token) -> str:
    """base32 of the first 10 bytes of HMAC-SHA256(key, token.mac_message(prefix))."""
    digest = hmac.new(key, token.mac_message(prefix), hashlib.sha256).digest()
    return _b32(digest[:MAC_BYTES])


def parse_token(text: str) -> Token:
    """Split a token string (lowercase, after "<prefix>-") into its fields, MAC unchecked."""
    parts = text.split(".")
    if len(parts) not in (2, 3):
        raise InvalidToken("malformed", "token does not have 2 or 3 dot-separated parts")
    stream = parts[1] if len(parts) == 3 else None
    if stream is not None and not _NAME.fullmatch(stream):
        raise InvalidToken("malformed", "stream part has characters outside a-z 0-9 -")
    tail = _TAIL.fullmatch(parts[-1])
    if tail is None:
        raise InvalidToken("malformed", "last part is not <key-id><day><fingerprint><mac>")
    key_id, day, fp, mac = tail.groups()
    n = sum(B32.index(char) << shift for char, shift in zip(day, (15, 10, 5, 0), strict=True))
    return Token(key_id=key_id, day=EPOCH + dt.timedelta(days=n),
                 subject=decode_subject(parts[0]), stream=stream, fingerprint=fp, mac=mac)


def _decode_secret(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional."""
    if any(c in text for c in "-_") and any(c in text for c in "+/"):
        raise ValueError("secret mixes the standard and URL-safe base64 alphabets")
    data = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise ValueError("secret is not valid base64") from None


def _check_key(key_id: str, secret: bytes) -> None:
    if not _KEY_ID.fullmatch(key_id):  # the value is not shown: it may be a misplaced secret
        raise ValueError("key id must be 1-8 characters of a-z and 0-9")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"secret of key {key_id!r} has {len(secret)} bytes, "
                         f"need at least {MIN_SECRET_BYTES}")


@dataclass(frozen=True, repr=False)
class Keyring:
    """Ordered signing keys: ``current_id`` signs (and is first); every key verifies."""

    keys: Mapping[str, bytes]
    current_id: str

    def __post_init__(self) -> None:
        if self.current_id not in self.keys:
            raise ValueError(f"current key id {self.current_id!r} is not in the keyring")
        for key_id, secret in self.keys.items():
            _check_key(key_id, secret)
        ordered = {self.current_id: self.keys[self.current_id], **self.keys}
        object.__setattr__(self, "keys", types.MappingProxyType(ordered))

    def __repr__(self) -> str:
        return f"Keyring(current_id={self.current_id!r}, key_ids={list(self.keys)!r})"

    @classmethod
    def from_text(cls, text: str) -> Keyring:
        """Parse the key-file format: one ``<key-id> <secret>`` per line; the first is current."""
        keys: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            fields = raw.split()
            if not fields or fields[0].startswith("#"):
                continue
            try:
                if len(fields) != 2:
                    raise ValueError("expected '<key-id> <secret>'")
                if fields[0] in keys:
                    raise ValueError(f"duplicate key id {fields[0]!r}")
                keys[fields[0]] = _decode_secret(fields[1])
                _check_key(fields[0], keys[fields[0]])
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
        if not keys:
            raise ValueError("no keys: expected lines of '<key-id> <secret>'")
        return cls(keys=keys, current_id=next(iter(keys)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read a key file (UTF-8)."""
        return cls.from_text(Path(path).read_text(encoding="utf-8"))


def generate_key_line(key_id: str | None = None) -> str:
    """A new key-file line: the id (random 4 characters by default) and 32 random bytes."""
    if key_id is None:
        key_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
    _check_key(key_id, b"x" * MIN_SECRET_BYTES)
    return f"{key_id} {base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _check_names(domain: str, prefix: str) -> str:
    if not _NAME.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} must be non-empty: a-z 0-9 and '-' only")
    if not domain or "@" in domain or any(c.isspace() for c in domain):
        raise ValueError(f"not a domain name: {domain!r}")
    return domain.lower()


class Signer:
    """Builds signed return paths with the keyring's current key."""

    def __init__(self, keyring: Keyring, domain: str = "bounces.example.org",
                 prefix: str = "bounce") -> None:
        self.domain = _check_names(domain, prefix)
        self.keyring = keyring
        self.prefix = prefix

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], domain: str = "bounces.example.org",
                  prefix: str = "bounce") -> Signer:
        """A signer with the keys of a key file."""
        return cls(Keyring.load(path), domain=domain, prefix=prefix)

    def sign(self, subject: str, address: str, *, stream: str | None = None,
             day: dt.date | None = None) -> Token:
        """The signed token; ValueError if a field cannot be carried or it does not fit."""
        if "@" not in address or not address.strip(_WHITESPACE):
            raise ValueError(f"not an email address: {address!r}")
        if stream is not None and not _NAME.fullmatch(stream):
            raise ValueError(f"stream {stream!r} must be non-empty: a-z 0-9 and '-' only")
        day = _utc_today() if day is None else day
        key_id = self.keyring.current_id
        unsigned = Token(key_id, day, subject, stream, fingerprint(address), mac="")
        local = f"{self.prefix}-{unsigned.unsigned}" + "x" * 16
        if len(local) > MAX_LOCAL_PART:
            carried = len(encode_subject(subject)) + (len(stream) + 1 if stream else 0)
            budget = carried - len(local) + MAX_LOCAL_PART
            raise ValueError(f"return path too long: local part of {len(local)} octets > 64; "
                             f"with prefix {self.prefix!r} and key id {key_id!r} the subject (as "
                             f"carried) plus '.stream' may use {budget} characters, here {carried}")
        mac = compute_mac(self.keyring.keys[key_id], self.prefix, unsigned)
        return Token(key_id, day, subject, stream, unsigned.fingerprint, mac)

    def return_path(self, subject: str, address: str, *, stream: str | None = None,
                    day: dt.date | None = None) -> str:
        """``<prefix>-<token>@<domain>`` for mail to ``address``; ``day`` defaults to UTC today."""
        token = self.sign(subject, address, stream=stream, day=day)
        return f"{self.prefix}-{token.token_id}@{self.domain}"


class Verifier:
    """Checks return paths: shape, domain, key id, MAC, then age (in that order)."""

    def __init__(self, keyring: Keyring, domain: str = "bounces.example.org",
                 prefix: str = "bounce", max_age_days: int = 21, future_skew_days: int = 1) -> None:
        if max_age_days < 0 or future_skew_days < 0:
            raise ValueError("max_age_days and future_skew_days must not be negative")
        self.domain = _check_names(domain, prefix)
        self.keyring = keyring
        self.prefix = prefix
        self.max_age_days = max_age_days
        self.future_skew_days = future_skew_days

    def verify(self, address: str, today: dt.date | None = None) -> Token:
        """The token of a valid return path (any letter case); InvalidToken otherwise."""
        text = address.strip(_WHITESPACE)
        if not text.isascii():
            raise InvalidToken("malformed", "address has non-ASCII characters")
        if text.startswith("<") and text.endswith(">"):
            text = text[1:-1]
        local, at, domain = text.lower().rpartition("@")
        if not at or not local or not domain:
            raise InvalidToken("malformed", "not an address of the form local@domain")
        if domain != self.domain:
            raise InvalidToken("wrong-domain", f"domain {domain!r} is not {self.domain!r}")
        if len(local) > MAX_LOCAL_PART:
            raise InvalidToken("malformed", f"local part longer than {MAX_LOCAL_PART} octets")
        if not local.startswith(f"{self.prefix}-"):
            raise InvalidToken("malformed", f"local part does not start with {self.prefix!r}-")
        token = parse_token(local[len(self.prefix) + 1:])
        key = self.keyring.keys.get(token.key_id)
        if key is None:
            raise InvalidToken("unknown-key", f"unknown key id {token.key_id!r}")
        expected = compute_mac(key, self.prefix, token)
        if not hmac.compare_digest(expected.encode("ascii"), token.mac.encode("ascii")):
            raise InvalidToken("bad-signature", "signature does not match")
        age = token.age_days(_utc_today() if today is None else today)
        if age < -self.future_skew_days:
            raise InvalidToken("future", f"issued {token.day.isoformat()}, {-age} days ahead")
        if age > self.max_age_days:
            raise InvalidToken("expired", f"issued {token.day.isoformat()}, {age} days ago "
                                          f"(max {self.max_age_days})")
        return token
