"""The PHP signer (integrations/mediawiki/src/Verp.php) against bounced.verp on random cases.

Shared by bench/php_signer_diff.py, which prints the figures (its docstring says what they
mean), and tests/test_php_signer.py, which holds them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
import re
import shutil
import string
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounced.verp import (
    EPOCH,
    MAX_DAY,
    InvalidToken,
    Keyring,
    Signer,
    Verifier,
)

ROOT = Path(__file__).resolve().parents[2]  # the checkout

STDIO = ROOT / "integrations" / "mediawiki" / "tests" / "verp-stdio.php"
VECTORS = ROOT / "tests" / "vectors" / "tokens.json"
KEYFILE = json.loads(VECTORS.read_text(encoding="utf-8"))["keyfile"]
KEY_IDS = ("k1", "k0", "2024q1ab")
NAME_CHARS = string.ascii_lowercase + string.digits + "-"
B32_CHARS = string.ascii_lowercase + "234567"
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
SPACE = " \t\r\n\x0b\x0c"
# Letters of every case, uncased scripts, and characters Unicode lets a final sigma skip
# (a combining accent, a modifier letter, a right single quotation mark, a middle dot).
NON_ASCII = "äöüßÖÄÜéÉΣσςİıǅ日本語😀\u0301ʰª\u2019·Ⅻ"
LINE_BREAKS = ("\n", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
FIELD_SEPARATORS = (" ", " ", "\t", "  ", "\x1f", " \t")


def _day(n: int) -> str:
    return (EPOCH + dt.timedelta(days=n)).isoformat()


def _pick(rng: random.Random, chars: str, low: int, high: int) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(low, high)))


def random_address(rng: random.Random, extra: str = "") -> str:
    """A random address: printable ASCII (and ``extra``), usually one '@', random case and
    space around it."""
    local = _pick(rng, ASCII + extra if rng.random() < 0.3 else NAME_CHARS + "._+" + extra, 0, 20)
    domain = _pick(rng, ASCII if rng.random() < 0.2 else NAME_CHARS + ".", 0, 20)
    address = f"{local}@{domain}" if rng.random() < 0.92 else local + domain
    if rng.random() < 0.3:
        address = "".join(c.upper() if rng.random() < 0.5 else c for c in address)
    if rng.random() < 0.2:
        address = _pick(rng, SPACE, 1, 3) + address + _pick(rng, SPACE, 0, 3)
    return address


def random_subject(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        return _pick(rng, NAME_CHARS, 1, 22)
    if r < 0.65:
        return str(rng.randint(1, 10 ** rng.randint(1, 12)))
    if r < 0.9:
        return _pick(rng, ASCII, 0, 14)
    return _pick(rng, NON_ASCII + "-_.Aa1", 1, 10)


def random_stream(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.5:
        return None
    if r < 0.9:
        return _pick(rng, NAME_CHARS, 1, 5)
    return rng.choice(["", "Digest", "a.b", "a_b", "x y", "ü", "-", "digest\n"])


def random_day(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.9:
        return rng.randint(0, MAX_DAY)
    if r < 0.95:
        return rng.choice([0, 1, MAX_DAY - 1, MAX_DAY, 19797, 20000])
    return rng.choice([-3, -1, MAX_DAY + 1, MAX_DAY + 3])


def random_prefix(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.8:
        return "bounce"
    if r < 0.9:
        return "wiki-bounce"
    if r < 0.95:
        return _pick(rng, NAME_CHARS, 1, 12)
    return rng.choice(["", "Bounce", "a.b", "b_1", "bounce\n"])


def random_domain(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.7:
        return "bounces.example.org"
    if r < 0.9:
        return "Bounces.Example.ORG"
    return rng.choice(["b.example", "x", " bounces.example.org", "a@b", "", "bounces.example\x1f"])


def altered(rng: random.Random, address: str) -> str:
    """A return path as a bounce might carry it: intact, re-cased, bracketed, or damaged."""
    r = rng.random()
    if r < 0.3:
        return address
    if r < 0.45:
        return address.upper()
    if r < 0.55:
        return _pick(rng, SPACE, 0, 2) + f"<{address}>" + _pick(rng, SPACE, 0, 2)
    i = rng.randrange(len(address))
    if r < 0.8:
        return address[:i] + rng.choice(B32_CHARS + "019.-@_") + address[i + 1:]
    if r < 0.9:
        return address[:i] + rng.choice(B32_CHARS + ".-") + address[i:]
    if r < 0.95:
        return address[:i] + address[i + 1:]
    return address[:i] + rng.choice(NON_ASCII) + address[i:]


def random_garbage(rng: random.Random, prefix: str, domain: str) -> str:
    """Something shaped a little like a return path, to reach every check of the parser."""
    tail = _pick(rng, B32_CHARS + "01", 26, 34)
    subject = _pick(rng, NAME_CHARS + "._", 0, 12)
    local = rng.choice([f"{prefix}-{subject}.{tail}", f"{prefix}-{subject}..{tail}",
                        _pick(rng, ASCII, 0, 30), f"{prefix}{tail}"])
    return f"{local}@{rng.choice([domain, domain.upper(), 'example.org', ''])}"


def random_keyfile(rng: random.Random) -> str:
    """1-4 lines: keys (sometimes bad ids or damaged secrets), comments, blanks, odd breaks."""
    lines = []
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.1:
            lines.append("# " + _pick(rng, ASCII, 0, 20))
        elif r < 0.2:
            lines.append(_pick(rng, " \t", 0, 3))
        else:
            key_id = rng.choice(["k1", "k2", "a", "2024q1ab", "zz9", "k3", "K1", "toolongid",
                                 "k-1"])
            raw = rng.randbytes(rng.choice([15, 16, 17, 24, 32, 32, 32, 33]))
            secret = (base64.urlsafe_b64encode(raw) if rng.random() < 0.5
                      else base64.b64encode(raw)).decode()
            if rng.random() < 0.5:
                secret = secret.rstrip("=")
            d = rng.random()
            if d < 0.05:
                secret = secret[:-1]
            elif d < 0.1:
                i = rng.randrange(len(secret))
                secret = secret[:i] + rng.choice("*=-_+/ .") + secret[i:]
            parts = [key_id, secret] + ([_pick(rng, ASCII, 1, 5)] if rng.random() < 0.05 else [])
            lines.append(rng.choice(FIELD_SEPARATORS).join(parts))
    text = "".join(line + rng.choice(LINE_BREAKS) for line in lines)
    return text if rng.random() < 0.9 else text.rstrip("\n")


def python_sign(req: dict[str, Any]) -> dict[str, Any]:
    keys = Keyring.from_text(req["keyfile"])
    signer = Signer(Keyring(keys=keys.keys, current_id=req["key_id"]), domain=req["domain"],
                    prefix=req["prefix"])
    day = dt.date.fromisoformat(req["day"])
    return {"ok": signer.return_path(req["subject"], req["address"], stream=req["stream"],
                                     day=day)}


def python_verify(req: dict[str, Any]) -> dict[str, Any]:
    verifier = Verifier(Keyring.from_text(req["keyfile"]), domain=req["domain"],
                        prefix=req["prefix"])
    try:
        token = verifier.verify(req["address"], today=dt.date.fromisoformat(req["today"]))
    except InvalidToken as exc:
        return {"reason": exc.reason}
    return {"ok": {"key_id": token.key_id, "day": token.day.isoformat(),
                   "subject": token.subject, "stream": token.stream,
                   "fingerprint": token.fingerprint, "mac": token.mac}}


def python_keyfile(req: dict[str, Any]) -> dict[str, Any]:
    keys = Keyring.from_text(req["text"])
    return {"ok": [[key_id, secret.hex()] for key_id, secret in keys.keys.items()]}


def python_answer(req: dict[str, Any]) -> dict[str, Any]:
    op = {"sign": python_sign, "verify": python_verify, "keyfile": python_keyfile}[req["op"]]
    try:
        return op(req)
    except ValueError as exc:
        return {"error": str(exc)}


def cases(rng: random.Random, count: int, extra: str = "") -> Iterator[dict[str, Any]]:
    """``count`` cases of three requests each: sign, verify, keyfile (in that order);
    ``extra``: characters beyond ASCII for the addresses."""
    for _ in range(count):
        day = random_day(rng)
        sign = {"op": "sign", "keyfile": KEYFILE, "key_id": rng.choice(KEY_IDS),
                "domain": random_domain(rng), "prefix": random_prefix(rng),
                "subject": random_subject(rng), "address": random_address(rng, extra),
                "stream": random_stream(rng), "day": _day(min(max(day, 0), MAX_DAY) if
                                                          rng.random() < 0.5 else day)}
        signed = python_answer(sign)
        if "ok" in signed:
            target = altered(rng, signed["ok"])
        else:
            target = random_garbage(rng, sign["prefix"], sign["domain"])
        today = _day(max(0, day) + rng.randint(-3, 25))
        yield sign
        yield {"op": "verify", "keyfile": KEYFILE, "domain": sign["domain"],
               "prefix": sign["prefix"], "address": target, "today": today}
        yield {"op": "keyfile", "text": random_keyfile(rng)}


def comparable(req: dict[str, Any], answer: dict[str, Any]) -> Any:
    """What must be equal: answers exactly, except the wording of errors (which differs by
    language); of those, only the kind: too long, and the key file's line number."""
    if "error" not in answer:
        return answer
    message = str(answer["error"])
    if req["op"] == "keyfile":
        line = re.match(r"line \d+:|no keys", message)
        return {"error": line.group(0) if line else message}
    return {"error": "too long" if "too long" in message else "invalid"}


@dataclass
class Report:
    seed: int
    count: int
    requests: dict[str, int] = field(default_factory=dict)
    differences: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[dict[str, Any], Any, Any]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_differences(self) -> int:
        return sum(self.differences.values())

    def lines(self) -> list[str]:
        out = [f"{self.count} random cases (seed {self.seed}), {self.seconds:.1f} s:"]
        for op, n in self.requests.items():
            out.append(f"  {op:8} {n:6} requests, {self.differences.get(op, 0)} differences")
        out.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        out.append(f"{self.total_differences} differences")
        for req, py, php in self.examples:
            out += [f"  DIFF {json.dumps(req, ensure_ascii=False)}", f"    python {py}",
                    f"    php    {php}"]
        return out


def php_missing() -> str | None:
    """Why the comparison cannot run here, or None."""
    return None if shutil.which("php") else "php is not installed (.ci/install-mediawiki)"


def compare(count: int, seed: int | None = None, extra: str = "",
            timeout: float = 300.0) -> Report:
    """Run ``count`` random cases through both implementations; the differences."""
    seed = random.SystemRandom().randrange(2**32) if seed is None else seed
    started = time.monotonic()
    requests = list(cases(random.Random(seed), count, extra))
    feed = "".join(json.dumps(r) + "\n" for r in requests)
    done = subprocess.run(["php", "-d", "memory_limit=512M", str(STDIO)], input=feed,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        raise RuntimeError(f"php exited {done.returncode}: {done.stderr.strip()[-500:]}")
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    if len(answers) != len(requests):
        raise RuntimeError(f"php answered {len(answers)} of {len(requests)} requests: "
                           f"{done.stderr.strip()[-500:]}")
    report = Report(seed=seed, count=count)
    for req, php in zip(requests, answers, strict=True):
        op = req["op"]
        py = python_answer(req)
        report.requests[op] = report.requests.get(op, 0) + 1
        kind = f"{op}:{next(iter(py))}" + (f":{py['reason']}" if "reason" in py else "")
        report.outcomes[kind] = report.outcomes.get(kind, 0) + 1
        if comparable(req, py) != comparable(req, php):
            report.differences[op] = report.differences.get(op, 0) + 1
            if len(report.examples) < 5:
                report.examples.append((req, py, php))
    report.seconds = time.monotonic() - started
    return report
