"""Fixtures for the tests of workers in Slurm jobs: one real Slurm cluster
for the whole session (cluster.py), and the system tests' own fixtures
for the xylem binary, secrets and processes. The tests skip when this
machine cannot run Slurm's daemons (not root); as root, a missing Slurm
or a cluster that does not come up is a failure, not a skip."""

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


# Taken as they are: xylem_bin, secret_file, xylem.
_system = _load_system_conftest()
xylem_bin = _system.xylem_bin
secret_file = _system.secret_file
xylem = _system.xylem


@pytest.fixture(scope="session")
def slurm():
    """The cluster: six CPU nodes c1-c6 and two GPU nodes g1-g2."""
    if os.geteuid() != 0:
        pytest.skip("Slurm's daemons need root (slurmd runs jobs as"
                    " their users)")
    reason = cluster.check_available()
    if reason:
        pytest.fail(reason)
    c = cluster.SlurmCluster()
    t0 = time.monotonic()
    try:
        c.start()
    except cluster.SlurmError as e:
        pytest.fail(f"the Slurm cluster did not come up: {e}")
    print(f"slurm: {len(c.nodes)} nodes idle in"
          f" {time.monotonic() - t0:.1f} s ({c.dir})")
    yield c
    left = c.stop()
    if left:
        pytest.fail(f"processes outlived the cluster (killed): {left}")


@pytest.fixture
def slurm_clean(slurm):
    """The cluster, with no job of an earlier test left in it."""
    yield slurm
    slurm.run("scancel", "--full", "-u", "root", check=False)
    if not cluster.wait_until(lambda: not slurm.run(
            "squeue", "-h", check=False).strip(), 20, 0.2):
        pytest.fail("jobs left after the test:\n"
                    + slurm.run("squeue", check=False))
