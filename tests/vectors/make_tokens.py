"""Write tests/vectors/tokens.json from docs/token-format.md, independently of bounced.verp.

This is a second implementation of the token format, written from the specification
only (it imports nothing from bounced), so the vectors do not merely echo the library.
Run: python tests/vectors/make_tokens.py  (rewrites tokens.json next to this file)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

KEYS = {  # id -> secret as written in the key file (the first is the current key)
    "k1": base64.b64encode(bytes(range(32))).decode(),
    "k0": base64.urlsafe_b64encode(b"retired key for the test vectors").decode().rstrip("="),
    "2024q1ab": base64.b64encode(hashlib.sha256(b"eight character key id").digest()).decode(),
}
FOREIGN = {"k9": base64.b64encode(b"a key nobody configured, 32 byte").decode(),
           "k1": base64.b64encode(b"same id as k1 but another secret").decode()}
DOMAIN, PREFIX, DAY = "bounces.example.org", "bounce", dt.date(2024, 3, 15)


def b32(data: bytes) -> str:
    return base64.b32encode(data).decode().rstrip("=").lower()


def secret(text: str) -> bytes:
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def fingerprint(address: str) -> str:
    return b32(hashlib.sha256(address.strip(" \t\r\n\x0b\x0c").lower().encode()).digest()[:5])


def carried(subject: str) -> str:
    return subject if re.fullmatch(r"[a-z0-9][a-z0-9-]*", subject) else "-" + b32(subject.encode())


def day_chars(day: dt.date) -> str:
    n = (day - dt.date(1970, 1, 1)).days
    return "".join("abcdefghijklmnopqrstuvwxyz234567"[(n >> s) & 31] for s in (15, 10, 5, 0))


def mac_message(prefix: str, key_id: str, day: dt.date, subject: str, stream: str | None,
                fp: str) -> str:
    n = (day - dt.date(1970, 1, 1)).days
    return "\n".join(["bounced-verp-v1", prefix, key_id, str(n), carried(subject), stream or "", fp])


def sign(subject: str, address: str, *, stream: str | None = None, day: dt.date = DAY,
         key_id: str = "k1", keys: dict[str, str] = KEYS, prefix: str = PREFIX,
         domain: str = DOMAIN) -> dict[str, Any]:
    fp = fingerprint(address)
    message = mac_message(prefix, key_id, day, subject, stream, fp)
    mac = b32(hmac.new(secret(keys[key_id]), message.encode(), hashlib.sha256).digest()[:10])
    token = carried(subject) + (f".{stream}" if stream else "") + f".{key_id}{day_chars(day)}{fp}{mac}"
    return {"return_path": f"{prefix}-{token}@{domain}", "mac_message": message,
            "token": {"key_id": key_id, "day": day.isoformat(), "subject": subject, "stream": stream,
                      "fingerprint": fp, "mac": mac, "token_id": token}}


def valid(name: str, subject: str, address: str, verify_as: list[tuple[str, str]] | None = None,
          **kw: Any) -> dict[str, Any]:
    signed = sign(subject, address, **kw)
    day = kw.get("day", DAY)
    rp = signed["return_path"]
    checks = verify_as or [(rp, day.isoformat()), (rp.upper(), day.isoformat())]
    inputs = {"subject": subject, "address": address, "stream": kw.get("stream"),
              "day": day.isoformat(), "key_id": kw.get("key_id", "k1"),
              "prefix": kw.get("prefix", PREFIX), "domain": kw.get("domain", DOMAIN)}
    return {"name": name, "sign": inputs, **signed,
            "verify": [{"address": a, "today": t} for a, t in checks]}


def build() -> dict[str, Any]:
    """All vectors, as written to tokens.json."""
    base = sign("4711", "alice@example.net")["return_path"]
    local, _, _ = base.partition("@")
    tok = local.removeprefix("bounce-")
    day = DAY.isoformat()
    later = (DAY + dt.timedelta(days=22)).isoformat()
    tail = tok.split(".")[1]
    max20 = "12345678901234567890"
    vectors: dict[str, Any] = {
        "format": "bounced-verp-v1",
        "spec": "docs/token-format.md",
        "keyfile": "# test vectors only: never use these keys\n"
                   + "".join(f"{k} {v}\n" for k, v in KEYS.items()),
        "domain": DOMAIN, "prefix": PREFIX, "max_age_days": 21, "future_skew_days": 1,
        "valid": [
            valid("plain numeric subject", "4711", "alice@example.net"),
            valid("subject with hyphen and a stream", "user-42", " Bob.Smith@Example.COM\n",
                  stream="enotif"),
            valid("encoded subject (upper case, underscore)", "User_42", "carol@example.org"),
            valid("encoded subject (dots, non-ASCII)", "wiki.Jörg", "jörg@exämple.de"),
            valid("20-character subject, 8-character key id: exactly 64 octets", max20,
                  "dave@example.net", key_id="2024q1ab"),
            valid("26-character subject, key id k1: exactly 64 octets",
                  "abcdefghijklmnopqrstuvwxyz", "erin@example.net"),
            valid("20-character subject and 5-character stream: exactly 64 octets", max20,
                  "frank@example.net", stream="watch"),
            valid("signed with the retired key k0", "4711", "alice@example.net", key_id="k0"),
            valid("other prefix and domain (not part of the MAC: domain)", "4711",
                  "alice@example.net", prefix="wiki-bounce", domain="bounces.wiki.example",
                  verify_as=[(sign("4711", "alice@example.net", prefix="wiki-bounce",
                                   domain="Bounces.Wiki.Example")["return_path"], day)]),
            valid("age limits: 21 days old and 1 day in the future are accepted", "7", "g@example.net",
                  verify_as=[(sign("7", "g@example.net")["return_path"], d) for d in
                             ((DAY + dt.timedelta(days=21)).isoformat(),
                              (DAY - dt.timedelta(days=1)).isoformat())]),
            valid("day 0 (1970-01-01)", "1", "h@example.net", day=dt.date(1970, 1, 1),
                  verify_as=[(sign("1", "h@example.net", day=dt.date(1970, 1, 1))["return_path"],
                              "1970-01-10")]),
            valid("a late day (2099-12-31)", "1", "h@example.net", day=dt.date(2099, 12, 31),
                  verify_as=[(sign("1", "h@example.net", day=dt.date(2099, 12, 31))["return_path"],
                              "2099-12-31")]),
        ],
    }
    flip = "b" if tok[-1] == "a" else "a"
    unknown = sign("4711", "alice@example.net", key_id="k9", keys=FOREIGN)["return_path"]
    cases = [  # (name, address, today, reason)
        ("no @", "bounce-4711.k1aaaaaaaaaaaaaaaaaaaaaaaaaaaa", day, "malformed"),
        ("empty local part", f"@{DOMAIN}", day, "malformed"),
        ("empty domain", f"{local}@", day, "malformed"),
        ("two @", f"{local}@{DOMAIN}@{DOMAIN}", day, "malformed"),
        ("not the prefix", f"postmaster@{DOMAIN}", day, "malformed"),
        ("prefix without its hyphen", f"bounce{tok}@{DOMAIN}", day, "malformed"),
        ("one part only", f"bounce-4711@{DOMAIN}", day, "malformed"),
        ("four parts", f"bounce-4711.a.b.{tail}@{DOMAIN}", day, "malformed"),
        ("empty subject", f"bounce-.{tail}@{DOMAIN}", day, "malformed"),
        ("empty stream (two dots)", f"bounce-4711..{tail}@{DOMAIN}", day, "malformed"),
        ("plus sign in subject", f"bounce-47+11.{tail}@{DOMAIN}", day, "malformed"),
        ("underscore in subject", f"bounce-47_11.{tail}@{DOMAIN}", day, "malformed"),
        ("underscore in stream", f"bounce-4711.en_otif.{tail}@{DOMAIN}", day, "malformed"),
        ("non-ASCII character", f"bounce-47\u00fc11.{tail}@{DOMAIN}", day, "malformed"),
        ("one character short: key id 'k', day '1atk' ('1' is not base32)",
         f"bounce-{tok[:-1]}@{DOMAIN}", day, "malformed"),
        ("one character appended: the last part parses with key id 'k1a'",
         f"bounce-{tok}a@{DOMAIN}", day, "unknown-key"),
        ("no key id", f"bounce-4711.{tail[2:]}@{DOMAIN}", day, "malformed"),
        ("key id of 9 characters", f"bounce-4711.123456789{tail[2:]}@{DOMAIN}", day, "malformed"),
        ("'1' is not base32", f"bounce-4711.{tail[:-1]}1@{DOMAIN}", day, "malformed"),
        ("'0' is not base32", f"bounce-4711.{tail[:-1]}0@{DOMAIN}", day, "malformed"),
        ("encoded subject with non-zero padding bits",
         f"bounce-{carried('User_42')[:-1]}b.{tail}@{DOMAIN}", day, "malformed"),
        ("encoded subject that should be literal", f"bounce--{b32(b'4711')}.{tail}@{DOMAIN}",
         day, "malformed"),
        ("too long: a 27-character subject signed correctly makes 65 octets",
         sign("abcdefghijklmnopqrstuvwxyz1", "erin@example.net")["return_path"], day, "malformed"),
        ("other domain", f"{local}@example.org", day, "wrong-domain"),
        ("subdomain", f"{local}@mail.{DOMAIN}", day, "wrong-domain"),
        ("trailing dot on the domain", f"{local}@{DOMAIN}.", day, "wrong-domain"),
        ("key id not configured (k9)", unknown, day, "unknown-key"),
        ("key id changed to k2", f"bounce-4711.k2{tail[2:]}@{DOMAIN}", day, "unknown-key"),
        ("last MAC character flipped", f"bounce-{tok[:-1]}{flip}@{DOMAIN}", day, "bad-signature"),
        ("subject changed", f"bounce-4712.{tail}@{DOMAIN}", day, "bad-signature"),
        ("stream added", f"bounce-4711.stream.{tail}@{DOMAIN}", day, "bad-signature"),
        ("fingerprint changed",
         f"bounce-4711.{tail[:6]}{'b' if tail[6] == 'a' else 'a'}{tail[7:]}@{DOMAIN}", day,
         "bad-signature"),
        ("day moved forward by one",
         f"bounce-4711.k1{day_chars(DAY + dt.timedelta(days=1))}{tail[6:]}@{DOMAIN}", day,
         "bad-signature"),
        ("same key id, another secret",
         sign("4711", "alice@example.net", keys=FOREIGN)["return_path"], day, "bad-signature"),
        ("expired: 22 days old", base, later, "expired"),
        ("expired: a year old", base, (DAY + dt.timedelta(days=366)).isoformat(), "expired"),
        ("future: 2 days ahead", base, (DAY - dt.timedelta(days=2)).isoformat(), "future"),
        ("order: a bad MAC is reported before the age", f"bounce-{tok[:-1]}{flip}@{DOMAIN}",
         later, "bad-signature"),
        ("order: an unknown key is reported before the age", unknown, later, "unknown-key"),
        ("order: the domain is checked before the shape", "nonsense@example.com", day,
         "wrong-domain"),
    ]
    invalid = [{"name": n, "address": a, "today": t, "reason": r} for n, a, t, r in cases]
    vectors["invalid"] = invalid
    vectors["sign_errors"] = [
        {"name": "subject too long (27 characters, key id k1)", "subject": "a" * 27,
         "address": "x@example.net", "stream": None, "key_id": "k1", "message_contains": "too long"},
        {"name": "subject plus stream too long", "subject": max20, "address": "x@example.net",
         "stream": "digest", "key_id": "k1", "message_contains": "too long"},
        {"name": "encoded subject too long (17 UTF-8 bytes -> 29 characters)",
         "subject": "ABCDEFGHIJKLMNOPQ", "address": "x@example.net", "stream": None,
         "key_id": "k1", "message_contains": "too long"},
        {"name": "empty subject", "subject": "", "address": "x@example.net", "stream": None,
         "key_id": "k1", "message_contains": "subject"},
        {"name": "stream with upper case", "subject": "1", "address": "x@example.net",
         "stream": "Digest", "key_id": "k1", "message_contains": "stream"},
        {"name": "stream with a dot", "subject": "1", "address": "x@example.net",
         "stream": "a.b", "key_id": "k1", "message_contains": "stream"},
        {"name": "empty stream", "subject": "1", "address": "x@example.net", "stream": "",
         "key_id": "k1", "message_contains": "stream"},
        {"name": "address without @", "subject": "1", "address": "example.net", "stream": None,
         "key_id": "k1", "message_contains": "address"},
    ]
    vectors["fingerprints"] = [
        {"address": a, "normalised": a.strip(" \t\r\n\x0b\x0c").lower(), "fingerprint": fingerprint(a)}
        for a in ("alice@example.net", "Alice@Example.NET", "  alice@example.net\r\n",
                  "JÖRG@EXÄMPLE.DE", "user+tag@example.com")
    ]
    vectors["bad_keyfiles"] = [
        {"text": "k1 AAECAwQFBgcICQoLDA0ODw\nk2 short\n", "line": 2, "why": "fewer than 16 bytes"},
        {"text": "# comment\n\nK1 AAECAwQFBgcICQoLDA0ODw\n", "line": 3, "why": "upper-case key id"},
        {"text": "k1 AAECAwQFBgcICQoLDA0ODw\nk1 EBESExQVFhcYGRobHB0eHw\n", "line": 2,
         "why": "duplicate key id"},
        {"text": "k1\n", "line": 1, "why": "no secret"},
        {"text": "k1 not*base64*at*all*\n", "line": 1, "why": "not base64"},
        {"text": "toolongid AAECAwQFBgcICQoLDA0ODw\n", "line": 1, "why": "key id over 8 characters"},
    ]
    return vectors


def main() -> None:
    vectors = build()
    out = Path(__file__).with_name("tokens.json")
    out.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(vectors['valid'])} valid, {len(vectors['invalid'])} invalid")


if __name__ == "__main__":
    main()
