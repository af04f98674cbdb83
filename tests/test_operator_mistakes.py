"""What a careless operator types: each mistake is one line on stderr and a non-zero exit
(2 for a usage error, 1 for a failed command, 75 from the pipe), never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .cmdline import run
from .helpers import BOUNCED, base_env


def one_line(proc: subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]
             ) -> str:
    text = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_configuration_file_that_is_not_utf8(tmp_path: Path) -> None:
    """A configuration file in Latin-1 (or a binary named by mistake) is one line naming it
    (main: a UnicodeDecodeError traceback from every command; deliver exited 1, which the
    mail server reads as a permanent failure)."""
    config = tmp_path / "bounced.toml"
    config.write_bytes(b'[smtp]\nhostname = "caf\xe9.example"\n')
    env = base_env(tmp_path)
    status = run(env, "status", "--config", str(config), "--subject", "s1")
    assert status.returncode == 1
    assert one_line(status) == (f"bounced status: {config}: not valid TOML: not UTF-8 text "
                                "(byte 0xe9 at offset 22)")
    piped = run(env, "deliver", "--config", str(config), "bounce-x@bounces.example.test",
                data=b"Subject: x\r\n\r\nbody\r\n")
    assert piped.returncode == 75 and "not UTF-8 text" in one_line(piped)


def test_text_arguments_that_are_not_utf8_are_usage_errors(tmp_path: Path) -> None:
    """Undecodable bytes in a subject, an address or a domain (a shell hands them over as
    surrogates) are a usage error naming the argument (main: a UnicodeEncodeError traceback
    from the store for status, reconfirm and breaker release; sign said "'utf-8' codec can't
    encode character"); an address without "@" is no address to look up (main answered
    "no incidents recorded; confirmed")."""
    env = base_env(tmp_path)
    assert run(env, "migrate").returncode == 0
    for args, label in (
        (["status", "--subject", b"caf\xe9"], "--subject"),
        (["status", "--address", b"caf\xe9@example.net"], "--address"),
        (["reconfirm", "--subject", b"\xff"], "--subject"),
        (["breaker", "release", b"\xff.example"], "DOMAIN"),
        (["sign", "--subject", "s1", "--address", b"\xe9@example.net"], "--address"),
    ):
        proc = subprocess.run([BOUNCED, *args], env={**os.environ, **env},
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_line(proc)
        assert f"error: argument {label}: not UTF-8 text" in line, line
        assert b"Traceback" not in proc.stderr
    proc = run(env, "status", "--address", "nobody")
    assert proc.returncode == 2
    assert "argument --address: not an email address: 'nobody'" in one_line(proc)


def test_store_paths_that_cannot_be_opened_say_why(tmp_path: Path) -> None:
    """A store path whose directory is a file, or that is a directory: the path and the
    system's reason, once (main repeated the path inside an "[Errno 20] ..." text)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    for url, reason in ((f"sqlite:///{blocker}/bounced.db", f"not a directory: {blocker}"),
                        (f"sqlite:///{tmp_path}", "a directory, not a database file")):
        proc = run(base_env(tmp_path, BOUNCED_STORE_URL=url), "migrate")
        assert proc.returncode == 1
        line = one_line(proc)
        assert line.startswith("bounced migrate: cannot open SQLite database ") and \
            line.endswith(reason), line
        assert "Errno" not in line


def test_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    """A store on a read-only file system (a backup mounted read-only, a full disk remounted):
    read commands and migrate say so, naming the directory (main: "SQLite: unable to open
    database file", neither file nor cause named); the pipe exits 75. Runs in a mount
    namespace of its own (unshare), so it needs root; skipped otherwise."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: the test mounts the store read-only "
                    "in a mount namespace of its own")
    source, mounted = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    mounted.mkdir()
    env = base_env(tmp_path, BOUNCED_STORE_URL=f"sqlite:///{source / 'bounced.db'}")
    assert run(env, "migrate").returncode == 0
    sign = run(env, "sign", "--subject", "s1", "--address", "a@example.net")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {source} {mounted} && "
                            f"mount -o remount,bind,ro {mounted} && ! touch {mounted}/x"],
                           capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip("a read-only bind mount in a mount namespace needs root (CI runs as root): "
                    f"{probe.stderr.decode().strip()}")
    env["BOUNCED_STORE_URL"] = f"sqlite:///{mounted / 'bounced.db'}"
    script = (f"mount --bind {source} {mounted} && mount -o remount,bind,ro {mounted} && "
              f'exec "$@"')
    for args, code in ((["status", "--subject", "s1"], 1), (["stats"], 1), (["migrate"], 1),
                       (["deliver", sign.stdout.strip()], 75)):
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", BOUNCED, *args],
                              env={**os.environ, **env}, input=b"Subject: x\r\n\r\nx\r\n",
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == code, (args, proc.stderr)
        line = one_line(proc)
        assert f"{mounted} is on a read-only file system" in line, line


def test_reprocess_says_which_id_it_did_not_queue(tmp_path: Path) -> None:
    """`reprocess` with an id that names no message says so (main: "queued 0 message(s)"
    and exit 1, which id and why left to guess)."""
    env = base_env(tmp_path)
    assert run(env, "migrate").returncode == 0
    proc = run(env, "reprocess", "4711")
    assert proc.returncode == 1
    assert proc.stdout == "queued 0 message(s) for processing again\n"
    assert one_line(proc) == "bounced reprocess: no stored message with id 4711"


def test_environment_values_that_are_not_utf8(tmp_path: Path) -> None:
    """A BOUNCED_* value with undecodable bytes is one line naming the variable (main: a
    traceback from serve's bind for a listen address and from asyncpg for a store URL, and a
    return path printed with a broken domain by sign)."""
    env = {k.encode(): v.encode() for k, v in {**os.environ, **base_env(tmp_path)}.items()}
    for variable, value, args in (
        (b"BOUNCED_SMTP_LISTEN", b"\xff:2525", ["serve"]),
        (b"BOUNCED_VERP_DOMAIN", b"b\xffx.example", ["sign", "--subject", "s1", "--address",
                                                      "a@example.net"]),
        (b"BOUNCED_STORE_URL", b"postgresql://postgres@127.0.0.1/te\xffst",
         ["status", "--subject", "s1"]),
    ):
        proc = subprocess.run([BOUNCED, *args], env={**env, variable: value},
                              capture_output=True, timeout=60, check=False)
        assert proc.returncode == 1, (variable, proc.stdout, proc.stderr)
        line = one_line(proc)
        assert f"{variable.decode()}: not UTF-8 text" in line, line
        assert proc.stdout == b""


def test_misspelt_configuration_key_or_section_names_the_nearest(tmp_path: Path) -> None:
    """A misspelt key or section in the file names the one meant, as a misspelt variable
    does (main listed every key of the section, and every section)."""
    env = base_env(tmp_path)
    for text, expected in (
        ('[smtp]\nlistne = "127.0.0.1:2525"\n', "[smtp] listne: unknown setting (did you mean "
                                                "'listen'?)"),
        ("[polcy]\nmin_bounces = 3\n", "[polcy]: unknown section (did you mean [policy]?)"),
    ):
        config = tmp_path / "bounced.toml"
        config.write_text(text)
        proc = run(env, "check-config", "--config", str(config))
        assert proc.returncode == 1
        assert one_line(proc) == f"bounced check-config: {expected}"
