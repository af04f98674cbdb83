"""Pipe mode for the MTA harness: the MTA runs ``bounced deliver`` as an unprivileged user.

Postfix's pipe(8) refuses to run a command as root or as the Postfix owner, and Exim never
delivers as root, so the command runs as an unprivileged user (``nobody``; for the private
Exim, which gives up root, its own user: see ``factory.pipe_user``). Two things follow:

- The command must be runnable by that user. This venv's interpreter may live where only
  root can reach it (pyenv under /root, mode 0700); then ``PipeSetup`` builds a launcher: a
  venv of the system Python of the same version (``--without-pip``) whose ``.pth`` adds this
  venv's site-packages, and a ``bounced`` script on it.
- The store and the key file must be the pipe user's. ``PipeSetup`` makes a directory under
  the system temp dir (pytest's tmp_path is root-only) with ``state/`` owned by the user;
  the SQLite file is created empty and handed over before anyone opens it, so the WAL and
  shared-memory files SQLite creates later (as root, in the daemon) get the same owner.

    with PipeSetup(domain, KEY_LINE) as setup:
        settings = make_settings(tmp_path, **setup.env())   # the daemon: same store and keys
        PostfixInstance(..., pipe=setup.route())            # or EximInstance
"""

from __future__ import annotations

import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

PIPE_USER = "nobody"
# The placeholders of the operator snippets that a test replaces.
SNIPPET_COMMAND = "/usr/local/bin/bounced"
SNIPPET_CONFIG = "/etc/bounced/bounced.toml"
SNIPPET_USER = "bounced"


@dataclass(frozen=True)
class PipeRoute:
    """What the pipe snippets' placeholders become: the command, its config, the user."""

    command: Path
    config: Path
    user: str = PIPE_USER


class PipeUnavailable(RuntimeError):
    """The pipe user cannot run bounced here (a property of the machine, not a failure)."""


def _reachable_by_others(path: Path) -> bool:
    """True when every directory above ``path`` lets other users through (o+x)."""
    return all(parent.stat().st_mode & 0o001 for parent in path.resolve().parents)


def _code_dirs() -> list[Path]:
    """Where bounced's code and its dependencies live (the pipe user must read them)."""
    import bounced

    return [Path(bounced.__file__).parent, *(Path(p) for p in site.getsitepackages())]


def _system_python() -> Path | None:
    """An interpreter of this interpreter's version that other users can run: the one this
    venv was made from (sys._base_executable, sys.base_prefix), else a system one."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(getattr(sys, "_base_executable", sys.executable)),
                  Path(sys.base_prefix) / "bin" / version]
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidates.append(Path(directory) / version)
    for candidate in candidates:
        if candidate.exists() and _reachable_by_others(candidate) and \
                candidate.resolve().name.startswith(version):
            return candidate
    return None


def _purelib(interpreter: Path) -> Path:
    """Where ``interpreter`` imports pure-Python packages from (its own sysconfig: the
    layout differs between builds, Debian's and upstream's)."""
    out = subprocess.run([str(interpreter), "-c",
                          "import sysconfig; print(sysconfig.get_path('purelib'))"],
                         capture_output=True, text=True, check=True, timeout=60)
    return Path(out.stdout.strip())


def launcher_reason(user: str = PIPE_USER) -> str | None:
    """Why no ``bounced`` command can be made runnable for ``user``, or None."""
    if os.geteuid() != 0:
        return "pipe mode tests need root (files are handed to the pipe user)"
    try:
        pwd.getpwnam(user)
    except KeyError:
        return f"no user {user!r} to run the pipe command as"
    for code in _code_dirs():
        if not _reachable_by_others(code / "x"):
            return f"{code} is not reachable by {user} (a parent directory lacks o+x)"
    if _reachable_by_others(Path(sys.executable)):
        return None
    if _system_python() is None:
        return (f"this interpreter ({Path(sys.executable).resolve()}) is not reachable by "
                f"{user} and there is no system python{sys.version_info.major}."
                f"{sys.version_info.minor} to run bounced's packages with")
    return None


class PipeSetup:
    """A directory the pipe user can use: a runnable ``bounced``, its config, its store."""

    def __init__(self, domain: str, key_line: str, user: str = PIPE_USER) -> None:
        self.domain = domain
        self.key_line = key_line
        self.user = user
        self.root: Path | None = None

    def _dir(self) -> Path:
        if self.root is None:
            raise RuntimeError("PipeSetup not started")
        return self.root

    @property
    def state_dir(self) -> Path:
        return self._dir() / "state"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "bounced.db"

    @property
    def keys_path(self) -> Path:
        return self.state_dir / "keys"

    @property
    def config_path(self) -> Path:
        return self._dir() / "bounced.toml"

    @property
    def command(self) -> Path:
        return self._dir() / "bin" / "bounced"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Create the directory, the store file, the key file, the config and the command."""
        reason = launcher_reason(self.user)
        if reason is not None:
            raise PipeUnavailable(reason)
        account = pwd.getpwnam(self.user)
        self.root = Path(tempfile.mkdtemp(prefix="bounced-pipe-"))
        self.root.chmod(0o755)
        self.state_dir.mkdir(mode=0o700)
        self.db_path.touch(mode=0o600)
        self.keys_path.write_text(self.key_line + "\n")
        self.keys_path.chmod(0o600)
        for path in (self.state_dir, self.db_path, self.keys_path):
            os.chown(path, account.pw_uid, account.pw_gid)
        self.config_path.write_text(
            "# bounced deliver, run by the MTA's pipe as the pipe user\n"
            f'[store]\nurl = "sqlite:///{self.db_path}"\nstate_dir = "{self.state_dir}"\n'
            f'[verp]\ndomain = "{self.domain}"\nkeys_file = "{self.keys_path}"\n'
            '[log]\nformat = "json"\n'
        )
        self.config_path.chmod(0o644)
        self._write_command()
        probe = subprocess.run(
            [str(self.command), "--version"], capture_output=True, text=True, timeout=30,
            check=False, user=account.pw_uid, group=account.pw_gid, env={"PATH": "/usr/bin:/bin"},
        )
        if probe.returncode != 0:
            output = (probe.stderr or probe.stdout).strip()[-500:]
            self.stop()
            raise PipeUnavailable(f"{self.user} cannot run the pipe command: {output}")

    def _write_command(self) -> None:
        """``bin/bounced``: this venv's bounced, on an interpreter the pipe user can run."""
        root = self._dir()
        (root / "bin").mkdir(mode=0o755)
        interpreter = Path(sys.executable)
        if not _reachable_by_others(interpreter):
            system = _system_python()
            assert system is not None  # launcher_reason() said so
            venv = root / "venv"
            subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)],
                           check=True, capture_output=True, timeout=60)
            interpreter = venv / "bin" / "python"
            packages = _purelib(interpreter)
            (packages / "bounced-test.pth").write_text("".join(
                f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages()))
        self.command.write_text(
            f"#!{interpreter}\nimport sys\n\nfrom bounced.cli import main\n\n"
            "sys.exit(main())\n")
        self.command.chmod(0o755)

    def stop(self) -> None:
        """Remove the directory (the MTA using it must be stopped first)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what tests pass on ----------------------------------------------------------------

    def route(self) -> PipeRoute:
        """The replacements for the operator snippets' placeholders."""
        return PipeRoute(command=self.command, config=self.config_path, user=self.user)

    def env(self) -> dict[str, str]:
        """The same store, keys and domain as BOUNCED_* variables (for the daemon's settings)."""
        return {
            "BOUNCED_STORE_URL": f"sqlite:///{self.db_path}",
            "BOUNCED_STORE_STATE_DIR": str(self.state_dir),
            "BOUNCED_VERP_KEYS_FILE": str(self.keys_path),
            "BOUNCED_VERP_DOMAIN": self.domain,
        }
