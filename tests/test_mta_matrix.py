"""The live MTA matrix: every MTA that can run here goes through every scenario it supports,
concurrently, against one scripted world (tests/mta/world.py); each bounce it sends back
must read exactly as the committed one in tests/mta_corpus does (an MTA upgrade that
changes its wording shows up here as a diff; regenerate with
``.venv/bin/python -m tests.mta.matrix --write`` and review it).

A scenario an MTA cannot do (no delay warning, no DSN, no SMTPUTF8 in that MTA) is no
test here: only supported cells are parameters. ``python -m tests.mta.matrix
--unsupported`` and the README's MTA table list the others with the reasons. A test skips
only when its MTA cannot run on this machine (not installed, not root).

One run of the whole matrix serves every test of the module (about 30 s: the expiry
scenarios wait for a 20 s queue lifetime, all MTAs at once).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .mta.matrix import (
    CORPUS,
    MatrixResult,
    MTARun,
    adapter_classes,
    classification,
    run_matrix,
    supported_cells,
    unsupported_cells,
)
from .mta.scenarios import SCENARIOS
from .mta.world import World, private_resolver_argv

KINDS = list(adapter_classes())


@pytest.fixture(scope="module", name="matrix")
def matrix_fixture() -> Iterator[MatrixResult]:
    """The whole matrix, run once for the module."""
    if os.geteuid() != 0:
        pytest.skip("the MTA matrix needs root (private MTA instances, port 53, mount namespaces)")
    lines: list[str] = []
    yield run_matrix(log=lines.append)


def _run(matrix: MatrixResult, kind: str) -> MTARun:
    run = next(r for r in matrix.runs if r.kind == kind)
    if run.error:
        pytest.fail(f"{run.error}\n{run.log_tail}")
    if run.skipped:
        pytest.skip(f"{run.label}: {run.skipped}")
    return run


@pytest.mark.parametrize("kind", KINDS)
def test_mta_produces_every_scenario_it_supports(matrix: MatrixResult, kind: str) -> None:
    """Every scenario the MTA supports is a bounce caught from it; the others are exactly
    the declared unsupported ones, each with its reason."""
    run = _run(matrix, kind)
    missing = [f"{o.scenario}: {o.detail}" for o in run.outcomes if o.status == "missing"]
    assert not missing, "\n".join([*missing, run.log_tail])
    unsupported = {o.scenario: o.detail for o in run.outcomes if o.status == "unsupported"}
    assert unsupported == unsupported_cells(kind)
    assert all(unsupported.values())
    assert {o.scenario for o in run.outcomes} == {s.name for s in SCENARIOS}


@pytest.mark.parametrize(("kind", "scenario"), supported_cells(),
                         ids=[f"{k}-{s}" for k, s in supported_cells()])
def test_regenerated_bounce_reads_as_committed(
    matrix: MatrixResult, kind: str, scenario: str,
) -> None:
    """The bounce the MTA sends today classifies exactly as the committed corpus file."""
    run = _run(matrix, kind)
    cells = [o for o in run.outcomes if o.scenario == scenario]
    assert cells and all(o.raw is not None for o in cells), cells
    for outcome in cells:
        committed = CORPUS / "emails" / outcome.file
        if not committed.exists():
            others = sorted(p.name for p in (CORPUS / "emails").glob(f"{kind}-*-{scenario}*"))
            pytest.fail(f"{outcome.file} is not in the corpus (committed: {others}); "
                        "regenerate with: .venv/bin/python -m tests.mta.matrix --write")
        assert outcome.raw is not None
        assert classification(outcome.raw) == classification(committed.read_bytes()), \
            outcome.file


def test_committed_corpus_has_no_file_the_matrix_would_not_write(matrix: MatrixResult) -> None:
    """For every MTA that ran, the committed files are exactly the ones this run produced."""
    for run in matrix.runs:
        if run.skipped or run.error:
            continue
        produced = {o.file for o in run.outcomes if o.raw is not None}
        committed = {p.name for p in (CORPUS / "emails").glob(f"{run.kind}-*.eml")}
        assert committed == produced, (run.kind, sorted(committed ^ produced))


def test_world_resolver_is_private(tmp_path: Path) -> None:
    """The MTAs' resolver file is a bind mount in their own namespace: /etc is untouched."""
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root")
    before = Path("/etc/resolv.conf").read_bytes()
    with World(tmp_path) as world:
        out = subprocess.run([*private_resolver_argv(world.resolv_conf), "cat",
                              "/etc/resolv.conf"], capture_output=True, text=True, check=True,
                             timeout=20).stdout
        assert out.startswith(f"nameserver {world.dns_ip}")
    assert Path("/etc/resolv.conf").read_bytes() == before
