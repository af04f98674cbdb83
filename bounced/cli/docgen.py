"""The man page and the bash completion of ``bounced``, generated from its argparse parsers.

    python3 -m bounced.cli.docgen man  > bounced.1
    python3 -m bounced.cli.docgen bash > /usr/share/bash-completion/completions/bounced

The Debian package generates both at build time, so they say what the command it ships
accepts; a pip install can write them the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bounced import __version__
from bounced.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    HTTP_TOKEN_ENV,
    KEYS_ENV,
    Settings,
)
from bounced.exits import (
    EX_DATAERR,
    EX_NOUSER,
    EX_TEMPFAIL,
    EX_USAGE,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SIGPIPE,
    EXIT_USAGE,
)


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
    lines += [*_environment(), *_files(), *_exit_status(),
        ".SH SEE ALSO",
        "\\fI/usr/share/doc/bounced/README.md\\fR",
    ]
    return "\n".join(lines) + "\n"


def _default(value: Any) -> str:
    """A setting's default as an operator writes it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) if value else "empty"
    if value == "":
        return "empty"
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_variables() -> list[tuple[str, str, str]]:
    """(variable, setting, default) of every ``BOUNCED_<SECTION>_<KEY>`` the configuration
    reads, in the order of the sections and their settings."""
    rows = []
    for section in dataclasses.fields(Settings):
        if section.name == "actions":  # [actions.NAME] tables: no variables
            continue
        defaults = typing.get_type_hints(Settings)[section.name]()
        for f in dataclasses.fields(defaults):
            rows.append((f"BOUNCED_{section.name.upper()}_{f.name.upper()}",
                         f"[{section.name}] {f.name}", _default(getattr(defaults, f.name))))
    return rows


def _environment() -> list[str]:
    lines = [
        ".SH ENVIRONMENT",
        ".TP", f"\\fB{CONFIG_ENV}\\fR",
        "The configuration file when \\fB\\-\\-config\\fR is not given; set but empty, the "
        "built\\-in defaults (no file is read).",
        ".PP",
        "Each setting of the configuration file can be set by a variable "
        "\\fBBOUNCED_\\fISECTION\\fB_\\fIKEY\\fR, which wins over the file; a list is "
        "written comma\\-separated. A variable of a known section with an unknown key is "
        "an error; any other \\fBBOUNCED_\\fR variable bounced does not read gets a warning "
        "naming the nearest one. These are all (the default after the setting):",
    ]
    lines.append(".PD 0")  # one setting per line, no blank line between them
    for name, setting, default in setting_variables():
        lines += [".TP", f"\\fB{_roff(name)}\\fR",
                  f"{_roff(setting)} (default: {_roff(default)})"]
    lines += [
        ".PD", ".PP", "Secrets, never in the configuration file:",
        ".TP", f"\\fB{_roff(KEYS_ENV)}\\fR",
        "The signing keys themselves (the key file's contents), when \\fB[verp] keys_file\\fR "
        "is empty.",
        ".TP", f"\\fB{_roff(HTTP_TOKEN_ENV)}\\fR",
        "The bearer token of the HTTP write endpoints, when \\fB[http] token_file\\fR is "
        "empty.",
        ".TP", "\\fBBOUNCED_ACTION_\\fINAME\\fB_SECRET\\fR",
        "The secret of the webhook action \\fINAME\\fR (upper case, \\(aq\\-\\(aq as "
        "\\(aq_\\(aq), when its \\fBsecret_file\\fR is empty.",
        ".TP", "\\fBCREDENTIALS_DIRECTORY\\fR",
        "systemd's credentials (\\fBLoadCredential=\\fR), read when neither the file nor "
        "the variable is set: \\fIverp\\-keys\\fR, \\fIhttp\\-token\\fR, "
        "\\fIwebhook\\-NAME\\fR.",
        ".TP", "\\fBSTATE_DIRECTORY\\fR",
        "systemd's \\fBStateDirectory=\\fR: the state directory when \\fB[store] "
        "state_dir\\fR is empty (else \\fI./state\\fR).",
        ".TP", "\\fBNOTIFY_SOCKET\\fR",
        "\\fBbounced serve\\fR tells systemd when it is ready and asks for more start time "
        "while it migrates (\\fBType=notify\\fR).",
        ".PP", "\\fBbounced deliver\\fR takes the envelope from its arguments, else from the "
        "variables the mail server sets:",
        ".TP", "\\fBRECIPIENT\\fR, \\fBORIGINAL_RECIPIENT\\fR, \\fBLOCAL_PART\\fR and "
        "\\fBDOMAIN\\fR",
        "The envelope recipient (Postfix's pipe(8) and local(8); Exim's pipe transport).",
        ".TP", "\\fBSENDER\\fR",
        "The envelope sender.",
        ".PP", "A command action runs with \\fBPATH\\fR, \\fBHOME\\fR, the locale, \\fBTZ\\fR, "
        "what its \\fBpass_env\\fR names, and \\fBBOUNCED_EVENT_ID\\fR and "
        "\\fBBOUNCED_EVENT_TYPE\\fR (the event is on its standard input).",
    ]
    return lines


EXIT_STATUSES = (
    (EXIT_OK, "Success."),
    (EXIT_FAIL, "The command failed (the reason is one line on standard error), or its answer "
                "is no: \\fBverify\\fR: the return path is invalid; \\fBbreaker release\\fR: "
                "no tripped breaker; \\fBreprocess\\fR: no message queued."),
    (EXIT_USAGE, "A usage error: an unknown option, a bad value (one line naming it)."),
    (EX_USAGE, "\\fBdeliver\\fR: no recipient given (sysexits EX_USAGE)."),
    (EX_DATAERR, "\\fBdeliver\\fR: the message is empty, or larger than \\fB[smtp] "
                 "max_message_size\\fR (EX_DATAERR: the mail server returns it)."),
    (EX_NOUSER, "\\fBdeliver\\fR: a bad, forged or expired return path (EX_NOUSER: the mail "
                "server returns it; nothing is stored)."),
    (EX_TEMPFAIL, "\\fBdeliver\\fR: anything temporary or of the operator's making (the store "
                  "unreachable or at another schema, no key, a configuration error): the "
                  "mail server keeps the message and retries (EX_TEMPFAIL)."),
    (EXIT_INTERRUPTED, "Interrupted (Ctrl\\-C)."),
    (EXIT_SIGPIPE, "The reader of the output went away (\\fBbounced queue | head\\fR)."),
)


def _files() -> list[str]:
    return [
        ".SH FILES",
        ".TP", f"\\fI{_roff(DEFAULT_CONFIG_PATH)}\\fR",
        "The configuration (every setting, commented, at its default), read by every command "
        "when neither \\fB\\-\\-config\\fR nor \\fB$BOUNCED_CONFIG\\fR is given.",
        ".TP", "\\fI/etc/bounced/verp\\-keys\\fR",
        "The signing keys: \\(aqKEY\\-ID SECRET\\(aq per line; the first signs, the others "
        "still verify. Create one with \\fBbounced keygen \\-\\-out\\fR \\fIFILE\\fR.",
        ".TP", "\\fI/var/lib/bounced\\fR",
        "The state directory (\\fB[store] state_dir\\fR, systemd's "
        "\\fBStateDirectory=\\fR): \\fIbounced.db\\fR, the SQLite store (with its "
        "\\fI\\-wal\\fR and \\fI\\-shm\\fR files) unless \\fB[store] url\\fR names another, "
        "and \\fIdev\\-keys\\fR, the development key \\fBbounced serve\\fR generates when no "
        "key is configured (\\fBcheck\\-config\\fR refuses it).",
    ]


def _exit_status() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for code, text in EXIT_STATUSES:
        lines += [".TP", f"\\fB{code}\\fR", text]
    return lines


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
