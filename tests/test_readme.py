"""The README's promises: its Python examples run, its commands and snippets exist."""

from __future__ import annotations

import re
from pathlib import Path

from bounced.verp import Keyring, Verifier

from .helpers import KEY_LINE, ROOT, write_keys

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_signing_example_runs_and_verifies(tmp_path: Path) -> None:
    """The README's signing example produces a return path that the daemon's verifier accepts."""
    keys = write_keys(tmp_path / "verp-keys")
    [block] = [b for b in python_blocks() if "Signer" in b]
    namespace: dict[str, object] = {}
    exec(block.replace("/etc/bounced/verp-keys", str(keys)), namespace)
    envelope_from = namespace["envelope_from"]
    assert isinstance(envelope_from, str)
    token = Verifier(Keyring.from_text(KEY_LINE), domain="bounces.example.org").verify(
        envelope_from)
    assert token.subject == "4711"


def test_quick_start_commands_exist() -> None:
    """The two quick-start commands are in the README and .ci/run calls the test one."""
    assert "\n    ./dev run\n" in README and "\n    ./dev test\n" in README
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "dev").stat().st_mode & 0o111


def test_referenced_files_exist() -> None:
    """Every repository path the README names exists."""
    for path in ("config/bounced.toml", "systemd/bounced.service", "docs/token-format.md",
                 "tests/vectors/tokens.json", "config/postfix", "config/exim",
                 "config/prometheus/bounced-alerts.yml", "config/grafana/bounced-dashboard.json",
                 ".ci/package"):
        assert (ROOT / path).exists(), path


def test_reason_table_matches_the_registry() -> None:
    """The README's table of reasons lists every reason, with its hard, counts and meaning."""
    from bounced.classify.registry import Reason

    rows = re.findall(r"^\| `([a-z]+)` \| (yes|) \| (yes|) \| (.+) \|$", README, flags=re.M)
    assert rows == [(r.value, "yes" if r.hard else "", "yes" if r.counts else "", r.meaning)
                    for r in Reason]
