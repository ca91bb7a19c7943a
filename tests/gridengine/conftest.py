"""Fixtures for the tests of the gridengine pool provider: one real Grid
Engine cell for the whole session (cluster.py), and the system tests'
own fixtures for the xylem binary, secrets and processes. The tests skip
when this machine cannot run Grid Engine's daemons (not root); as root,
a missing Grid Engine or a cell that does not come up is a failure, not
a skip."""

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

import cluster

SYSTEM = Path(__file__).resolve().parents[1] / "system"
sys.path.insert(0, str(SYSTEM))


def _load_system_conftest():
    spec = importlib.util.spec_from_file_location(
        "xylem_system_conftest", SYSTEM / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_system = _load_system_conftest()
xylem_bin = _system.xylem_bin
secret_file = _system.secret_file
xylem = _system.xylem


@pytest.fixture(scope="session")
def gridengine():
    """The cell: one execution host, queue all.q of 16 slots, PE smp."""
    if os.geteuid() != 0:
        pytest.skip("Grid Engine's daemons need root (sge_execd runs jobs"
                    " as their users)")
    reason = cluster.check_available()
    if reason:
        pytest.fail(reason)
    c = cluster.GridEngineCluster()
    t0 = time.monotonic()
    try:
        c.start()
    except cluster.GridEngineError as e:
        pytest.fail(f"the Grid Engine cell did not come up: {e}")
    print(f"gridengine: {c.slots} slots ready in"
          f" {time.monotonic() - t0:.1f} s ({c.dir})")
    yield c
    left = c.stop()
    if left:
        pytest.fail(f"processes outlived the cell (killed): {left}")


@pytest.fixture
def gridengine_clean(gridengine):
    """The cell, with no job of an earlier test left in it."""
    yield gridengine
    gridengine.run("qdel", "-f", "-u", "*", check=False)
    if not cluster.wait_until(lambda: not gridengine.jobs(), 20, 0.2):
        pytest.fail(f"jobs left after the test: {gridengine.jobs()}")
