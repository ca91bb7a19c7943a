"""Fixtures for the tests of the gridengine pool provider: one real Grid
Engine cell for the whole session (cluster.py), and the system tests'
own fixtures for the xylem binary, secrets and processes. The tests skip
when this machine cannot run Grid Engine's daemons (not root); as root,
a missing Grid Engine or a cell that does not come up is a failure, not
a skip."""

import sys
from pathlib import Path

import pytest

import cluster  # puts tests/ on sys.path, for batch_common
import batch_common

SYSTEM = Path(__file__).resolve().parents[1] / "system"
sys.path.insert(0, str(SYSTEM))

# Taken as they are: xylem_bin, secret_file, xylem.
_system = batch_common.system_conftest()
xylem_bin = _system.xylem_bin
secret_file = _system.secret_file
xylem = _system.xylem


@pytest.fixture(scope="session")
def gridengine():
    """The cell: one execution host, queue all.q of 16 slots, PE smp."""
    yield from batch_common.cluster_session(
        cluster.check_available, cluster.GridEngineCluster,
        cluster.GridEngineError,
        skip="Grid Engine's daemons need root (sge_execd runs jobs as"
             " their users)",
        name="the Grid Engine cell", noun="cell",
        ready=lambda c, s: f"gridengine: {c.slots} slots ready in"
                           f" {s:.1f} s ({c.dir})")


@pytest.fixture
def gridengine_clean(gridengine):
    """The cell, with no job of an earlier test left in it."""
    yield gridengine
    gridengine.run("qdel", "-f", "-u", "*", check=False)
    if not cluster.wait_until(lambda: not gridengine.jobs(), 20, 0.2):
        pytest.fail(f"jobs left after the test: {gridengine.jobs()}")
