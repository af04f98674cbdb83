"""atheris (libFuzzer) harness for classify(): run by tests/test_classify_fuzz.py, or alone:

    mkdir -p /tmp/found && .venv/bin/python tests/fuzz_classify.py -max_total_time=600 \
        /tmp/found tests/corpus/emails

Any exception is a finding: classify itself never raises, so the harness raises when a
reader inside it did (the report's ``failures``) or when one message took too long.
"""

from __future__ import annotations

import sys
import time

import atheris

with atheris.instrument_imports(include=["bounced.classify"]):
    from bounced.classify import classify

MAX_SECONDS = 0.5  # CPU seconds for one message (the inputs are at most -max_len bytes)


def one_input(data: bytes) -> None:
    """Classify one input; raise on a failure inside classify or a slow classification."""
    start = time.thread_time()
    report = classify(data)
    elapsed = time.thread_time() - start
    if report.failures:
        raise AssertionError(report.failures)
    if elapsed > MAX_SECONDS:
        raise AssertionError(f"classify took {elapsed:.3f} s of CPU")
    report.to_json()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
