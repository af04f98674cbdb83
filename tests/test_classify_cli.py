"""`bounced classify`: JSON lines, a table on a terminal, errors per file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bounced.classify.cli import main

CORPUS = Path(__file__).resolve().parent / "corpus" / "emails"


class Tty(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_json_lines_one_per_file() -> None:
    """--json prints one object per input with the issue's keys, "file" first."""
    files = [str(CORPUS / "rfc3464-01.eml"), str(CORPUS / "arf-02.eml")]
    out = io.StringIO()
    assert main(["--json", *files], out) == 0
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["file"] for o in objs] == files
    assert list(objs[0]) == ["file", "kind", "feedback_type", "recipients", "original",
                            "reporting_mta"]
    assert objs[1]["kind"] == "complaint"


def test_table_on_terminal() -> None:
    """On a terminal the report is a readable table naming the recipient and reason."""
    out = Tty()
    assert main([str(CORPUS / "lhost-qmail-02.eml")], out) == 0
    text = out.getvalue()
    assert "bounce" in text and "userunknown@example.jp" in text and "{" not in text


def test_unreadable_file_reported_and_others_done(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file gives an error on stderr and exit 1, and the next file is still done."""
    out = io.StringIO()
    code = main(["--json", "/nonexistent/x.eml", str(CORPUS / "rfc3464-01.eml")], out)
    assert code == 1
    assert "/nonexistent/x.eml" in capsys.readouterr().err
    assert len(out.getvalue().splitlines()) == 1


def test_stdin_dash() -> None:
    """'-' reads the message from standard input."""
    raw = (CORPUS / "rfc3464-01.eml").read_bytes()
    stdin = io.TextIOWrapper(io.BytesIO(raw))
    out = io.StringIO()
    assert main(["--json", "-"], out, stdin) == 0
    assert json.loads(out.getvalue())["kind"] == "bounce"
