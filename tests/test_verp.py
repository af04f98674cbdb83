"""bounced.verp: the test vectors in both directions, round trips, rotation and hygiene."""

from __future__ import annotations

import ast
import base64
import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bounced.verp as verp
from bounced.verp import (
    InvalidToken,
    Keyring,
    Signer,
    Token,
    Verifier,
    fingerprint,
    generate_key_line,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS_DIR = Path(__file__).resolve().parent / "vectors"
VECTORS: dict[str, Any] = json.loads((VECTORS_DIR / "tokens.json").read_text(encoding="utf-8"))
RING = Keyring.from_text(VECTORS["keyfile"])
EPOCH = dt.date(1970, 1, 1)
LAST_DAY = EPOCH + dt.timedelta(days=32**4 - 1)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ring_with_current(key_id: str) -> Keyring:
    return Keyring(keys=RING.keys, current_id=key_id)


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


# -- the vectors, signing direction ------------------------------------------------------------

@pytest.mark.parametrize("case", VECTORS["valid"], ids=ids(VECTORS["valid"]))
def test_sign_reproduces_vector(case: dict[str, Any]) -> None:
    """Signing each vector's inputs gives exactly its return path."""
    i = case["sign"]
    signer = Signer(ring_with_current(i["key_id"]), domain=i["domain"], prefix=i["prefix"])
    got = signer.return_path(i["subject"], i["address"], stream=i["stream"], day=day(i["day"]))
    assert got == case["return_path"]
    assert len(got.partition("@")[0]) <= 64


@pytest.mark.parametrize("case", VECTORS["valid"], ids=ids(VECTORS["valid"]))
def test_mac_message_is_the_documented_bytes(case: dict[str, Any]) -> None:
    """The MAC is HMAC-SHA256 over the vector's mac_message, first 10 bytes, base32 lowercase."""
    i, t = case["sign"], case["token"]
    token = Token(t["key_id"], day(t["day"]), t["subject"], t["stream"], t["fingerprint"], t["mac"])
    assert token.mac_message(i["prefix"]).decode("ascii") == case["mac_message"]
    digest = hmac.new(RING.keys[i["key_id"]], case["mac_message"].encode(), hashlib.sha256).digest()
    assert t["mac"] == base64.b32encode(digest[:10]).decode().lower()


@pytest.mark.parametrize("case", VECTORS["sign_errors"], ids=ids(VECTORS["sign_errors"]))
def test_sign_rejects_what_cannot_be_carried(case: dict[str, Any]) -> None:
    """Too-long or uncarriable inputs raise ValueError with a message saying what is wrong."""
    signer = Signer(ring_with_current(case["key_id"]), domain=VECTORS["domain"])
    with pytest.raises(ValueError, match=case["message_contains"]):
        signer.return_path(case["subject"], case["address"], stream=case["stream"],
                           day=dt.date(2024, 3, 15))


# -- the vectors, verifying direction ----------------------------------------------------------

VERIFY_CASES = [(c, v) for c in VECTORS["valid"] for v in c["verify"]]


@pytest.mark.parametrize(("case", "check"), VERIFY_CASES,
                         ids=[f"{c['name']} / {v['address'][:20]} {v['today']}"
                              for c, v in VERIFY_CASES])
def test_verify_gives_vector_fields(case: dict[str, Any], check: dict[str, str]) -> None:
    """Verifying each vector's return path (any case, at the given day) gives its fields."""
    i, t = case["sign"], case["token"]
    verifier = Verifier(RING, domain=i["domain"], prefix=i["prefix"])
    token = verifier.verify(check["address"], today=day(check["today"]))
    assert (token.key_id, token.day.isoformat(), token.subject, token.stream,
            token.fingerprint, token.mac, token.token_id) == (
        t["key_id"], t["day"], t["subject"], t["stream"], t["fingerprint"], t["mac"], t["token_id"])
    assert token.fingerprint == fingerprint(i["address"])


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=ids(VECTORS["invalid"]))
def test_verify_rejects_vector_with_reason(case: dict[str, Any]) -> None:
    """Each invalid vector is rejected with its reason code."""
    verifier = Verifier(RING, domain=VECTORS["domain"], prefix=VECTORS["prefix"],
                        max_age_days=VECTORS["max_age_days"],
                        future_skew_days=VECTORS["future_skew_days"])
    with pytest.raises(InvalidToken) as info:
        verifier.verify(case["address"], today=day(case["today"]))
    assert info.value.reason == case["reason"]
    assert info.value.reason in verp.REASONS and str(info.value)


@pytest.mark.parametrize("case", VECTORS["fingerprints"], ids=lambda c: repr(c["address"]))
def test_fingerprint_vectors(case: dict[str, str]) -> None:
    """fingerprint() is base32 of the first 5 bytes of SHA-256 of the normalised address."""
    assert fingerprint(case["address"]) == case["fingerprint"]
    assert fingerprint(case["normalised"]) == case["fingerprint"]
    assert re.fullmatch(r"[a-z2-7]{8}", case["fingerprint"])


@pytest.mark.parametrize("case", VECTORS["bad_keyfiles"], ids=lambda c: c["why"])
def test_bad_key_file_names_the_line(case: dict[str, Any]) -> None:
    """A bad key file raises ValueError naming the line, without echoing any secret."""
    with pytest.raises(ValueError, match=f"^line {case['line']}:") as info:
        Keyring.from_text(case["text"])
    for line in case["text"].splitlines():
        fields = line.split()
        if len(fields) == 2:
            assert fields[1] not in str(info.value)


def test_vectors_match_the_independent_implementation() -> None:
    """tokens.json is what tests/vectors/make_tokens.py (written from the spec) produces."""
    spec = importlib.util.spec_from_file_location("make_tokens", VECTORS_DIR / "make_tokens.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == VECTORS


# -- properties --------------------------------------------------------------------------------

def carried_length(subject: str) -> int:
    """Length of the subject in the token, computed from the spec (not from verp)."""
    if re.fullmatch(r"[a-z0-9][a-z0-9-]*", subject):
        return len(subject)
    return 1 + math.ceil(len(subject.encode("utf-8")) * 8 / 5)


SUBJECTS = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,25}", fullmatch=True),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=14),
)
STREAMS = st.one_of(st.none(), st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True))
ADDRESSES = st.emails().map(lambda a: a[:200])
DAYS = st.dates(min_value=EPOCH, max_value=LAST_DAY)


@settings(max_examples=300, deadline=None)
@given(subject=SUBJECTS, stream=STREAMS, address=ADDRESSES, issued=DAYS,
       age=st.integers(min_value=-1, max_value=21), swap=st.booleans())
def test_any_allowed_input_round_trips(subject: str, stream: str | None, address: str,
                                       issued: dt.date, age: int, swap: bool) -> None:
    """Every subject/stream/address/day that fits round-trips; what does not fit is refused."""
    signer, verifier = Signer(RING), Verifier(RING)
    length = 7 + carried_length(subject) + (1 + len(stream) if stream else 0) + 1 + 2 + 28
    if length > 64:
        with pytest.raises(ValueError, match="too long"):
            signer.return_path(subject, address, stream=stream, day=issued)
        return
    rp = signer.return_path(subject, address, stream=stream, day=issued)
    assert len(rp.partition("@")[0]) == length
    assert re.fullmatch(r"bounce-[a-z0-9.-]+@bounces\.example\.org", rp)
    today = min(max(issued + dt.timedelta(days=age), EPOCH), dt.date.max)
    token = verifier.verify(rp.swapcase() if swap else rp, today=today)
    assert (token.subject, token.stream, token.day) == (subject, stream, issued)
    assert token.fingerprint == fingerprint(address.upper())
    assert f"bounce-{token.token_id}@bounces.example.org" == rp


MUTATION_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.-+_="


@settings(max_examples=500, deadline=None)
@given(subject=st.sampled_from(["4711", "user-42", "User_42", "12345678901234567890"]),
       stream=st.sampled_from([None, "watch"]), data=st.data())
def test_any_single_character_mutation_is_rejected(subject: str, stream: str | None,
                                                   data: st.DataObject) -> None:
    """Substituting, inserting or deleting any one character of the local part is rejected."""
    issued = dt.date(2024, 3, 15)
    rp = Signer(RING).return_path(subject, "alice@example.net", stream=stream, day=issued)
    local, _, domain = rp.partition("@")
    pos = data.draw(st.integers(min_value=0, max_value=len(local) - 1))
    op = data.draw(st.sampled_from(["substitute", "insert", "delete"]))
    char = data.draw(st.sampled_from([c for c in MUTATION_CHARS if c != local[pos]]))
    mutated = {"substitute": local[:pos] + char + local[pos + 1:],
               "insert": local[:pos] + char + local[pos:],
               "delete": local[:pos] + local[pos + 1:]}[op]
    with pytest.raises(InvalidToken):
        Verifier(RING).verify(f"{mutated}@{domain}", today=issued)


# -- behaviour ---------------------------------------------------------------------------------

def test_letter_case_never_matters() -> None:
    """Address case changes neither the return path nor the verification result."""
    signer = Signer(RING, domain="Bounces.Example.ORG")
    a = signer.return_path("User_42", "Alice@Example.NET", stream="digest", day=dt.date(2024, 1, 2))
    b = signer.return_path("User_42", " alice@example.net ", stream="digest", day=dt.date(2024, 1, 2))
    assert a == b and a.endswith("@bounces.example.org")
    verifier = Verifier(RING, domain="BOUNCES.example.org")
    for variant in (a, a.upper(), a.title(), f"<{a.upper()}>", f"  {a}\r\n"):
        assert verifier.verify(variant, today=dt.date(2024, 1, 2)).subject == "User_42"


def test_key_rotation_keeps_retired_keys_verifying(tmp_path: Path) -> None:
    """After rotation a token from the retired key verifies; dropping that key rejects it."""
    old_line, new_line = generate_key_line("k1"), generate_key_line("k2")
    path = tmp_path / "keys"
    path.write_text(f"{old_line}\n", encoding="utf-8")
    issued = dt.date(2024, 5, 1)
    before = Signer.from_file(path).return_path("4711", "alice@example.net", day=issued)
    path.write_text(f"# rotated\n{new_line}\n\n{old_line}\n", encoding="utf-8")
    rotated = Keyring.load(path)
    assert rotated.current_id == "k2" and list(rotated.keys) == ["k2", "k1"]
    assert Verifier(rotated).verify(before, today=issued).key_id == "k1"
    after = Signer(rotated).return_path("4711", "alice@example.net", day=issued)
    assert Verifier(rotated).verify(after, today=issued).key_id == "k2"
    with pytest.raises(InvalidToken) as info:
        Verifier(Keyring.from_text(new_line)).verify(before, today=issued)
    assert info.value.reason == "unknown-key"


def test_mac_comparison_uses_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every MAC check goes through hmac.compare_digest, for good and for forged MACs."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    good = VECTORS["valid"][0]
    Verifier(RING).verify(good["return_path"], today=day(good["sign"]["day"]))
    forged = next(c for c in VECTORS["invalid"] if c["name"] == "last MAC character flipped")
    with pytest.raises(InvalidToken):
        Verifier(RING).verify(forged["address"], today=day(forged["today"]))
    mac = good["token"]["mac"].encode()
    assert len(calls) == 2 and mac in calls[0] and calls[1][0] == mac and calls[1][1] != mac


def test_verp_imports_only_the_standard_library() -> None:
    """bounced/verp.py imports standard-library modules only (checked on its AST)."""
    tree = ast.parse((ROOT / "bounced" / "verp.py").read_text(encoding="utf-8"))
    names = {alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    names |= {n.module or "." for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))
    assert names and {name.split(".")[0] for name in names} <= sys.stdlib_module_names | {
        "__future__"}


def test_generated_key_lines_load_and_differ() -> None:
    """generate_key_line gives loadable lines with fresh 32-byte secrets and valid ids."""
    lines = [generate_key_line(), generate_key_line(), generate_key_line("r2025")]
    ring = Keyring.from_text("\n".join(lines))
    assert len(set(ring.keys.values())) == 3 and all(len(k) == 32 for k in ring.keys.values())
    assert ring.current_id == lines[0].split()[0] and re.fullmatch(r"[a-z0-9]{1,8}", ring.current_id)
    with pytest.raises(ValueError, match="key id"):
        generate_key_line("Upper")


def test_keyring_repr_hides_secrets() -> None:
    """A keyring's repr shows key ids, never secrets."""
    text = repr(RING)
    assert "k1" in text and all(repr(s) not in text for s in RING.keys.values())
    assert all(line.split()[1] not in text for line in VECTORS["keyfile"].splitlines()[1:])


def test_age_limits_are_configurable() -> None:
    """max_age_days and future_skew_days move the expired and future boundaries."""
    issued = dt.date(2024, 6, 1)
    rp = Signer(RING).return_path("1", "a@example.net", day=issued)
    strict = Verifier(RING, max_age_days=3, future_skew_days=0)
    assert strict.verify(rp, today=issued + dt.timedelta(days=3)).age_days(
        issued + dt.timedelta(days=3)) == 3
    for today, reason in ((issued + dt.timedelta(days=4), "expired"),
                          (issued - dt.timedelta(days=1), "future")):
        with pytest.raises(InvalidToken) as info:
            strict.verify(rp, today=today)
        assert info.value.reason == reason


def test_day_defaults_to_utc_today() -> None:
    """Without a day the token is dated today in UTC, and verify defaults to today too."""
    before = dt.datetime.now(dt.UTC).date()
    token = Verifier(RING).verify(Signer(RING).return_path("1", "a@example.net"))
    assert before <= token.day <= dt.datetime.now(dt.UTC).date()


def test_bad_prefix_domain_or_day_rejected_at_construction() -> None:
    """Signer/Verifier refuse an uncarriable prefix or domain; dates before 1970 are refused."""
    bad: list[dict[str, Any]] = [{"prefix": "Bounce"}, {"prefix": "bo.unce"}, {"prefix": ""},
                                 {"domain": "a@b"}, {"domain": ""}]
    for kwargs in bad:
        with pytest.raises(ValueError):
            Signer(RING, **kwargs)
        with pytest.raises(ValueError):
            Verifier(RING, **kwargs)
    with pytest.raises(ValueError, match="1970"):
        Signer(RING).return_path("1", "a@example.net", day=dt.date(1969, 12, 31))


def test_spec_examples_are_test_vectors() -> None:
    """Every full return path and MAC quoted in docs/token-format.md is one of the vectors."""
    doc = (ROOT / "docs" / "token-format.md").read_text(encoding="utf-8")
    quoted = re.findall(r"bounce-[a-z0-9.-]+@bounces\.example\.org", doc)
    assert quoted and set(quoted) <= {c["return_path"] for c in VECTORS["valid"]}
    macs = {c["token"]["mac"] for c in VECTORS["valid"]}
    assert set(re.findall(r"MAC `([a-z2-7]{16})`", doc)) <= macs
    assert re.findall(r"MAC `([a-z2-7]{16})`", doc)
