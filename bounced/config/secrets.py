"""Where a secret comes from: one lookup for the signing keys, the HTTP token and each webhook's
secret. A file named by a setting, else an environment variable, else a systemd credential
(``LoadCredential=``, under ``$CREDENTIALS_DIRECTORY``). Secrets never live in the TOML file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bounced.exceptions import ConfigError


def load_secret(where: str, file: str, env_name: str, credential: str,
                env: Mapping[str, str]) -> tuple[str, str] | None:
    """The secret's text and where it came from: ``file`` (the setting ``where``), else
    ``$env_name``, else the credential ``credential``; None when none of them is set."""
    if file:
        return read_secret_file(where, Path(file)), file
    if env.get(env_name, "").strip():
        return env[env_name], env_name
    directory = env.get("CREDENTIALS_DIRECTORY")
    if directory:
        path = Path(directory) / credential
        if path.exists():
            return read_secret_file(f"credential {credential}", path), str(path)
    return None


def read_secret_file(where: str, path: Path) -> str:
    """The file's text; a ConfigError naming ``where`` and why not (one line)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file: {path}") from None
    except PermissionError:
        raise ConfigError(f"{where}: cannot read {path}: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{where}: cannot read {path}: {reason}") from None
