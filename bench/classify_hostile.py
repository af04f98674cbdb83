"""Time and peak memory of classify() on hostile messages, against a normal DSN as baseline.

    .venv/bin/python bench/classify_hostile.py
"""

from __future__ import annotations

import time
import tracemalloc

from bounced.classify import classify

DSN = (b"From: MAILER-DAEMON@x.example\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
       b'Content-Type: multipart/report; boundary="B"\r\n\r\n--B\r\n'
       b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
       b"Final-Recipient: rfc822; a@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n")


def deep(depth: int) -> bytes:
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'
                   for i in range(depth))
    return ("From: MAILER-DAEMON@x.example\r\nSubject: failure\r\n" + head
            + "Content-Type: text/plain\r\n\r\n<a@b.example>:\r\n550 5.1.1 unknown\r\n").encode()


def many(n: int) -> bytes:
    blocks = "".join(f"\r\nFinal-Recipient: rfc822; u{i}@x.example\r\nAction: failed\r\n"
                     f"Status: 5.1.1\r\n" for i in range(n))
    return DSN.replace(b"\r\n--B--", blocks.encode() + b"\r\n--B--")


def measure(name: str, raw: bytes, base: float) -> float:
    tracemalloc.start()
    start = time.perf_counter()
    report = classify(raw)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ratio = f"{elapsed / base:,.0f}x baseline" if base else "baseline"
    print(f"{name:<28} {len(raw) / 1e6:8.2f} MB  {elapsed * 1000:9.1f} ms  peak "
          f"{peak / 1e6:7.1f} MB  kind={report.kind:<8} recipients={len(report.recipients):<4}"
          f" {ratio}")
    return elapsed


def main() -> None:
    base = measure("normal DSN", DSN, 0.0)
    measure("MIME nesting 5,000 deep", deep(5000), base)
    measure("50 MB header", b"Subject: " + b"x" * 50_000_000 + b"\r\n\r\nhi\r\n", base)
    measure("100k recipients", many(100_000), base)


if __name__ == "__main__":
    main()
