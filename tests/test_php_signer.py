"""The PHP signer of the MediaWiki extension: every token vector, and bounced.verp's answers on
random inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import ROOT
from .support import php_signer_diff

PHP = shutil.which("php")
RUNNER = ROOT / "integrations" / "mediawiki" / "tests" / "run-vectors.php"
VECTORS = ROOT / "tests" / "vectors" / "tokens.json"

pytestmark = pytest.mark.skipif(PHP is None, reason="php is not installed "
                                "(.ci/install-mediawiki installs it)")


def expected_checks() -> int:
    """One check per vector item: each signing and verification, each invalid address,
    signing error, fingerprint and bad key file, and the key file itself."""
    v = json.loads(VECTORS.read_text(encoding="utf-8"))
    return (1 + len(v["valid"]) + sum(len(x["verify"]) for x in v["valid"]) + len(v["invalid"])
            + len(v["sign_errors"]) + len(v["fingerprints"]) + len(v["bad_keyfiles"]))


def test_php_signer_passes_every_token_vector() -> None:
    """run-vectors.php checks every vector of tokens.json, and every check passes."""
    assert PHP is not None
    done = subprocess.run([PHP, str(RUNNER), str(VECTORS)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.splitlines()[-1:] == [f"{expected_checks()} passed, 0 failed"], \
        done.stdout + done.stderr
    assert done.returncode == 0 and done.stderr == ""


def test_php_signer_runner_reports_a_wrong_vector(tmp_path: Path) -> None:
    """A vector the PHP code does not reproduce is counted as failed, with its name."""
    assert PHP is not None
    v = json.loads(VECTORS.read_text(encoding="utf-8"))
    v["valid"][0]["return_path"] = v["valid"][0]["return_path"].replace("@", "x@")
    v["invalid"][0]["reason"] = "expired"
    broken = tmp_path / "tokens.json"
    broken.write_text(json.dumps(v))
    done = subprocess.run([PHP, str(RUNNER), str(broken)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == f"{expected_checks() - 2} passed, 2 failed"
    assert f"FAIL valid '{v['valid'][0]['name']}': sign" in done.stdout
    assert f"FAIL invalid '{v['invalid'][0]['name']}'" in done.stdout


def test_php_signer_agrees_with_bounced_verp_on_random_inputs() -> None:
    """2,000 random cases (sign an ASCII address, verify an altered return path, parse a key
    file): PHP answers exactly as bounced.verp. bench/php_signer_diff.py runs 20,000."""
    diff = php_signer_diff
    report = diff.compare(2_000)
    print("\n".join(report.lines()))
    assert report.total_differences == 0, "\n".join(report.lines())
    assert report.requests == {"sign": 2_000, "verify": 2_000, "keyfile": 2_000}
    # The random inputs reach every outcome, so agreement means something.
    assert {"sign:ok", "sign:error", "keyfile:ok", "keyfile:error", "verify:ok"} <= \
        set(report.outcomes)
    assert {f"verify:reason:{r}" for r in ("malformed", "wrong-domain", "unknown-key",
                                            "bad-signature", "expired", "future")} <= \
        set(report.outcomes)
