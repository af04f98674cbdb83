"""Byte-level fuzzing of classify(), seeded with real bounces, in bounded time.

Two fuzzers: hypothesis (always), mutating corpus, held-out and hand-written messages
(bytes flipped, inserted, deleted, repeated, messages cut and spliced, hostile strings
inserted), and atheris (coverage-guided, libFuzzer) for a fixed time when it is installed
(Linux x86_64: the test extra installs it). Both assert what the worker relies on: classify
returns a report, nothing raised inside it (its ``failures`` is empty: a reader that raises
is a bug, even when classify carries on), and one message never takes long.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bounced.classify import classify
from bounced.classify.model import KINDS

ROOT = Path(__file__).resolve().parent
SEEDS = sorted([*(ROOT / "corpus" / "emails").iterdir(),
                *(ROOT / "flufl_bounce" / "data").iterdir(),
                *(ROOT / "classify" / "general").iterdir()])
MESSAGES = [path.read_bytes() for path in SEEDS if path.is_file()]
# CPU seconds one classification may take here (the bench's target is 50 ms for a 10 MB
# message on a quiet machine; fuzzed messages are a few KB, so this only catches a blow-up)
MAX_SECONDS = 0.5
EXAMPLES = int(os.environ.get("BOUNCED_FUZZ_EXAMPLES", "400"))
ATHERIS_SECONDS = int(os.environ.get("BOUNCED_FUZZ_SECONDS", "20"))
SNIPPETS = [b" " * 5000, b"\t" * 3000, b"@" * 2000, b"a@" * 1000, b"\r\n" * 2000, b"\n " * 2000,
            b"<" * 2000, b"=\r\n" * 500, b"--" * 2000, b"x: y\n" * 500, b"\xff\xfe" * 100,
            b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n",
            b"Content-Transfer-Encoding: base64\r\n", b"Status: 5.1.1\r\n",
            b"Final-Recipient: rfc822; a@b.example\r\n", b"<a@b.example>: 550 user unknown\r\n",
            b"=?utf-8?b?", b"\x00" * 100, "\u00e9\u3000".encode() * 500]


def check(raw: bytes) -> None:
    """classify(raw) gives a report of a known kind, nothing raised inside, quickly."""
    start = time.thread_time()
    report = classify(raw)
    elapsed = time.thread_time() - start
    assert not report.failures, report.failures
    assert report.kind in KINDS
    report.to_json()
    assert elapsed < MAX_SECONDS, elapsed


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed message with a few mutations."""
    data = bytearray(draw(st.sampled_from(MESSAGES)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            data = bytearray(draw(st.sampled_from(MESSAGES)))
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 6))
        if op == 0:  # flip bytes
            for _ in range(draw(st.integers(1, 8))):
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == 1:  # insert random bytes
            data[at:at] = draw(st.binary(max_size=64))
        elif op == 2:  # delete a slice
            del data[at: at + draw(st.integers(1, 512))]
        elif op == 3:  # repeat a slice
            size = draw(st.integers(1, 256))
            data[at:at] = data[at: at + size] * draw(st.integers(2, 20))
        elif op == 4:  # cut
            del data[at:]
        elif op == 5:  # splice another message in
            other = draw(st.sampled_from(MESSAGES))
            cut = draw(st.integers(0, len(other)))
            data[at:] = other[cut:]
        else:  # a hostile string
            data[at:at] = draw(st.sampled_from(SNIPPETS))
    return bytes(data)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_bounces(raw: bytes) -> None:
    """Seed messages with flipped, inserted, deleted, repeated and spliced bytes."""
    check(raw)


def test_every_seed_classifies_cleanly() -> None:
    """The seeds themselves (and each cut at ten points) raise nothing inside classify."""
    for raw in MESSAGES:
        for i in range(1, 11):
            check(raw[: len(raw) * i // 10])


HARNESS = ROOT / "fuzz_classify.py"


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (the test extra installs it on Linux x86_64)")
def test_atheris_for_a_bounded_time(tmp_path: Path) -> None:
    """Coverage-guided fuzzing (atheris) from the seeds for a fixed time finds nothing."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (tmp_path / "found").mkdir()
    for i, raw in enumerate(MESSAGES):
        (seeds / f"{i:04d}").write_bytes(raw)
    run = subprocess.run(
        [sys.executable, str(HARNESS), f"-max_total_time={ATHERIS_SECONDS}", "-timeout=5",
         "-rss_limit_mb=1024", "-max_len=65536", f"-artifact_prefix={tmp_path}/",
         str(tmp_path / "found"), str(seeds)],
        capture_output=True, text=True, timeout=ATHERIS_SECONDS + 120, check=False,
        cwd=tmp_path)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(
        ("crash-", "timeout-", "oom-", "slow-unit-")))
    assert run.returncode == 0 and not crashes, (crashes, run.stderr[-3000:])
