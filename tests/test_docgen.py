"""The man page and the bash completion generated from the parser (the package builds both
with `python3 -m bounced.cli.docgen`), and the help text they are made of."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bounced import __version__
from bounced.cli import _parser
from bounced.cli.docgen import _commands, bash_completion, manpage

from .helpers import ROOT


def test_every_command_and_option_has_help_text() -> None:
    """`bounced COMMAND --help` explains every command, option and argument."""
    for command in _commands(_parser()):
        assert command.help, command.name
        for action in command.parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"bounced {command.name} {action.option_strings or action.dest}"


def test_man_page_lists_every_command_and_option_and_renders_cleanly(tmp_path: Path) -> None:
    """The man page names each command with its options and the version, and man(1) renders
    it without a warning."""
    text = manpage()
    assert f'"bounced {__version__}"' in text
    for command in _commands(_parser()):
        assert f".SS bounced {command.name.replace('-', chr(92) + '-')}" in text
        for action in command.parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option.replace("-", "\\-") in text, (command.name, option)
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    page = tmp_path / "bounced.1"
    page.write_text(text)
    proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "100"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "bounced check-config" in proc.stdout and "--raw-days DAYS" in proc.stdout


def test_docgen_command_prints_both() -> None:
    """`python3 -m bounced.cli.docgen man|bash`, as debian/rules runs it."""
    for what, start in (("man", ".TH BOUNCED 1"), ("bash", "# bash completion for bounced")):
        proc = subprocess.run([sys.executable, "-m", "bounced.cli.docgen", what], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=True)
        assert proc.stdout.startswith(start)


def complete(tmp_path: Path, *words: str) -> list[str]:
    """What bash offers after `bounced WORDS...` (the last word is the one completed)."""
    script = tmp_path / "bounced.bash"
    script.write_text(bash_completion())
    line = " ".join(f"'{w}'" for w in ("bounced", *words))
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c",
         f'source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _bounced; '
         'printf "%s\\n" "${COMPREPLY[@]}"'],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True)
    return [w for w in proc.stdout.splitlines() if w]


def test_bash_completion_offers_commands_options_choices_and_files(tmp_path: Path) -> None:
    """Completion knows the commands, each command's options, an option's choices, and
    offers file names where a FILE goes."""
    assert {"serve", "status", "classify", "purge", "--version"} <= set(complete(tmp_path, ""))
    assert complete(tmp_path, "che") == ["check-config"]
    assert set(complete(tmp_path, "status", "--")) == {"--config", "--subject", "--address",
                                                      "--json", "--help"}
    assert complete(tmp_path, "queue", "--state", "qu") == ["quarantined"]
    assert complete(tmp_path, "breaker", "") == ["--config", "-c", "--help", "list", "release"]
    (tmp_path / "my-bounced.toml").write_text("")
    assert complete(tmp_path, "serve", "--config", "my-b") == ["my-bounced.toml"]
    assert complete(tmp_path, "--version", "classify", "--json", "my-") == ["my-bounced.toml"]
    assert complete(tmp_path, "sign", "--subject", "") == []  # free text: nothing to offer


def test_man_page_documents_environment_files_and_exit_statuses() -> None:
    """ENVIRONMENT names every variable the configuration reads (each setting's, the secrets',
    $BOUNCED_CONFIG) with its setting; FILES the configuration file and the state directory;
    EXIT STATUS every status bounced.exits defines (the page had a BOUNCED_SECTION_KEY
    pattern and "0, 1, 2, sysexits" only)."""
    from bounced import exits
    from bounced.config import CONFIG_ENV, SECRET_ENV, setting_env_names

    text = manpage()
    sections = text.split("\n.SH ")
    environment = next(s for s in sections if s.startswith("ENVIRONMENT"))
    files = next(s for s in sections if s.startswith("FILES"))
    status = next(s for s in sections if s.startswith("EXIT STATUS"))
    for name in [*setting_env_names(), *SECRET_ENV, CONFIG_ENV]:
        assert f"\\fB{name}\\fR" in environment, name
    assert "\\fBBOUNCED_SMTP_LISTEN\\fR\n[smtp] listen (default: 127.0.0.1:2525)" in environment
    assert "/etc/bounced/bounced.toml" in files and "/var/lib/bounced" in files
    codes = {v for k, v in vars(exits).items() if k.startswith("EX") and isinstance(v, int)}
    assert len(codes) >= 9
    for code in codes:
        assert f".TP\n\\fB{code}\\fR\n" in status, code
