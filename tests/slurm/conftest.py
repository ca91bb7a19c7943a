"""Fixtures for the tests of workers in Slurm jobs: one real Slurm cluster
for the whole session (cluster.py), and the system tests' own fixtures
for the xylem binary, secrets and processes. The tests skip when this
machine cannot run Slurm's daemons (not root); as root, a missing Slurm
or a cluster that does not come up is a failure, not a skip."""

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
def slurm():
    """The cluster: six CPU nodes c1-c6 and two GPU nodes g1-g2."""
    yield from batch_common.cluster_session(
        cluster.check_available, cluster.SlurmCluster, cluster.SlurmError,
        skip="Slurm's daemons need root (slurmd runs jobs as their users)",
        name="the Slurm cluster", noun="cluster",
        ready=lambda c, s: f"slurm: {len(c.nodes)} nodes idle in"
                           f" {s:.1f} s ({c.dir})")


@pytest.fixture
def slurm_clean(slurm):
    """The cluster, with no job of an earlier test left in it."""
    yield slurm
    slurm.run("scancel", "--full", "-u", "root", check=False)
    if not cluster.wait_until(lambda: not slurm.run(
            "squeue", "-h", check=False).strip(), 20, 0.2):
        pytest.fail("jobs left after the test:\n"
                    + slurm.run("squeue", check=False))
