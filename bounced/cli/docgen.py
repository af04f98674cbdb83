"""The man page and the bash completion of ``bounced``, generated from its argparse parsers.

    python3 -m bounced.cli.docgen man  > bounced.1
    python3 -m bounced.cli.docgen bash > /usr/share/bash-completion/completions/bounced

The Debian package generates both at build time, so they say what the command it ships
accepts; a pip install can write them the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bounced import __version__


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    parser: argparse.ArgumentParser


def _commands(parser: argparse.ArgumentParser) -> list[Command]:
    """The subcommands in the order the parser lists them; ``classify`` with its own parser
    (the main parser hands its arguments over untouched)."""
    from bounced.classify.cli import _parser as classify_parser

    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in subs._choices_actions}
    commands = []
    for name, sub in subs.choices.items():
        own = classify_parser() if name == "classify" else sub
        commands.append(Command(name, helps.get(name, ""), own))
    return commands


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            yield action


def _parser() -> argparse.ArgumentParser:
    from bounced.cli import _parser as cli_parser

    return cli_parser()


# --- man page ---------------------------------------------------------------------------

def _roff(text: str) -> str:
    """Text safe in a roff line: backslashes and hyphens escaped, no leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def _usage(name: str, parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().removeprefix("usage: ").replace("[-h] ", "").strip()
    return " ".join(usage.split()).removeprefix(parser.prog).strip() or name


def _option_label(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"\\fI{_roff(action.metavar or action.dest).upper()}\\fR" \
            if not isinstance(action.metavar, tuple) else _roff(" ".join(action.metavar))
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = action.metavar or (
        "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper())
    return f"{names} \\fI{_roff(str(metavar))}\\fR"


def manpage() -> str:
    parser = _parser()
    lines = [
        f'.TH BOUNCED 1 "" "bounced {__version__}" "User Commands"',
        ".SH NAME",
        "bounced \\- " + _roff(parser.description or ""),
        ".SH SYNOPSIS",
        ".B bounced",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".br",
        ".B bounced",
        "\\fB\\-\\-version\\fR | \\fB\\-h\\fR",
        ".SH DESCRIPTION",
        "bounced receives the bounces of mail sent with signed VERP return paths (over SMTP, "
        "from the mail server, or piped by it), classifies them, records an incident per "
        "failed recipient and unconfirms an address that has failed persistently. "
        "\\fBbounced serve\\fR runs the daemon; the other commands inspect and operate the "
        "store it uses.",
        ".PP",
        "Every command but \\fBkeygen\\fR and \\fBclassify\\fR reads the configuration "
        "named by \\fB\\-\\-config\\fR, else \\fB$BOUNCED_CONFIG\\fR, else "
        "\\fI/etc/bounced/bounced.toml\\fR when it exists. Run them as the service's "
        "user, so that they see the store and keys the service sees.",
        ".SH COMMANDS",
    ]
    for command in _commands(parser):
        usage = _roff(_usage(command.name, command.parser))
        lines += [f".SS bounced {_roff(command.name)} {usage}",
                  _roff(command.help[:1].upper() + command.help[1:]) + "."]
        for action in _options(command.parser):
            lines += [".TP", _option_label(action), _roff(action.help or "")]
    lines += [
        ".SH ENVIRONMENT",
        ".TP", "\\fBBOUNCED_CONFIG\\fR",
        "The configuration file when \\fB\\-\\-config\\fR is not given.",
        ".TP", "\\fBBOUNCED_\\fISECTION\\fB_\\fIKEY\\fR",
        "Overrides one setting, e.g. \\fBBOUNCED_SMTP_LISTEN=127.0.0.1:2600\\fR.",
        ".TP", "\\fBBOUNCED_VERP_KEYS\\fR",
        "The signing keys themselves (the key file's contents).",
        ".TP", "\\fBCREDENTIALS_DIRECTORY\\fR",
        "systemd's credentials: \\fIverp\\-keys\\fR, \\fIhttp\\-token\\fR, "
        "\\fIwebhook\\-NAME\\fR.",
        ".SH FILES",
        ".TP", "\\fI/etc/bounced/bounced.toml\\fR",
        "The configuration (every setting, commented, at its default).",
        ".TP", "\\fI/etc/bounced/verp\\-keys\\fR",
        "The signing keys: \\(aqKEY\\-ID SECRET\\(aq per line; the first signs, the others "
        "still verify. Create one with \\fBbounced keygen \\-\\-out\\fR \\fIFILE\\fR.",
        ".TP", "\\fI/var/lib/bounced\\fR",
        "The state directory: the SQLite store.",
        ".SH EXIT STATUS",
        "0 on success; 1 when the command failed (the reason is one line on standard error); "
        "2 for a usage error; \\fBbounced deliver\\fR answers with sysexits(3) codes "
        "(75 to make the mail server retry).",
        ".SH SEE ALSO",
        "\\fI/usr/share/doc/bounced/README.md\\fR",
    ]
    return "\n".join(lines) + "\n"


# --- bash completion ----------------------------------------------------------------------

def _words(actions: list[argparse.Action]) -> str:
    return " ".join(o for a in actions for o in a.option_strings)


def _value_case(a: argparse.Action) -> str:
    """What an option's value completes to: its choices, a file name, or nothing."""
    pattern = "|".join(a.option_strings)
    if a.choices:
        return (f'            {pattern}) COMPREPLY=($(compgen -W '
                f'"{" ".join(map(str, a.choices))}" -- "$cur")); return ;;')
    if str(a.metavar or "").upper() in ("FILE", "DIR"):
        return f'            {pattern}) COMPREPLY=($(compgen -f -- "$cur")); return ;;'
    return f"            {pattern}) return ;;"


def _command_case(command: Any) -> str:
    """One command's case: its options' values, then its options, choices or file names."""
    actions = list(_options(command.parser))
    value_cases = [_value_case(a) for a in actions if a.option_strings and a.nargs != 0]
    positional = [a for a in actions if not a.option_strings]
    words = _words(actions) + " --help"
    rest = ""
    if any(a.choices for a in positional):
        words += " " + " ".join(str(c) for a in positional for c in (a.choices or ()))
    elif any(str(a.metavar or "").upper() == "FILE" for a in positional):
        rest = '            COMPREPLY+=($(compgen -f -- "$cur"))\n'
    return (
        f"        {command.name})\n"
        + ('            case "$prev" in\n' + "\n".join(value_cases) + "\n            esac\n"
           if value_cases else "")
        + f'            COMPREPLY=($(compgen -W "{words.strip()}" -- "$cur"))\n'
        + rest
        + "            ;;"
    )


def bash_completion() -> str:
    """A ``_bounced`` completion function: commands, each command's options, the choices of
    an option, and file names where an option or argument takes a file."""
    commands = _commands(_parser())
    top = " ".join([c.name for c in commands] + ["--version", "--help"])
    cases = [_command_case(command) for command in commands]
    return f"""\
# bash completion for bounced, generated from its parser (python3 -m bounced.cli.docgen bash)
_bounced() {{
    local cur prev command i
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    command=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${{COMP_WORDS[i]}}" in
            -*) ;;
            *) command="${{COMP_WORDS[i]}}"; break ;;
        esac
    done
    if [ -z "$command" ]; then
        COMPREPLY=($(compgen -W "{top}" -- "$cur"))
        return
    fi
    case "$command" in
{chr(10).join(cases)}
    esac
}}
complete -o filenames -F _bounced bounced
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bounced.cli.docgen",
                                description="Print bounced's man page or bash completion.")
    p.add_argument("what", choices=["man", "bash"], help="man: roff man page; bash: completion")
    args = p.parse_args(argv)
    sys.stdout.write(manpage() if args.what == "man" else bash_completion())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
