"""MPIFunction: a ShellFunction launched with Open MPI's mpirun on a number
of ranks, as one command task with a core per rank on one worker. These
tests run the real mpirun (and mpicc for the C program); without them they
are skipped."""

import os
import shutil
import subprocess
import time

import pytest

import xylem
from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(shutil.which("mpirun") is None,
                                reason="mpirun (openmpi-bin) is not"
                                       " installed")

HELLO_C = r"""
#include <mpi.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	int rank, size, sum;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	printf("rank %d of %d sum %d\n", rank, size, sum);
	MPI_Finalize();
	return 0;
}
"""


@pytest.fixture
def mex(make_executor):
    """One local worker with two cores: room for two ranks."""
    return make_executor(workers=1, cores_per_worker=2)


def test_two_ranks_each_print(mex):
    mf = xylem.MPIFunction(
        "sh -c 'echo rank=$OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"
        " on $(hostname)'", ranks=2)
    r = mex.submit(mf).result(TIMEOUT)
    assert r.returncode == 0, r.stderr
    host = os.uname().nodename
    assert sorted(r.stdout.splitlines()) == [
        f"rank=0 of 2 on {host}", f"rank=1 of 2 on {host}"]


def test_prefix_variables_and_placement(mex):
    # The template puts the launcher itself; both names hold the prefix.
    # Each rank writes a file of its own: mpirun's forwarding of the
    # ranks' stdout can drop a short-lived rank's line on a loaded host.
    mf = xylem.MPIFunction(
        'echo "x=$XYLEM_MPI_PREFIX"; echo "p=$PARSL_MPI_PREFIX";'
        " $PARSL_MPI_PREFIX sh -c 'echo OMPI_COMM_WORLD_RANK=$OMPI_COMM_WORLD_RANK"
        " > rank.$OMPI_COMM_WORLD_RANK'; cat rank.* | sort",
        ranks=2, prepend_prefix=False)
    r = mex.submit(mf).result(TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "x=mpirun -np 2 --oversubscribe", "p=mpirun -np 2 --oversubscribe",
        "OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_RANK=1"]


def test_task_asks_a_core_per_rank(mex):
    f = mex.submit(xylem.MPIFunction("sleep 2", ranks=2))
    deadline = time.monotonic() + TIMEOUT
    used = 0
    while used != 2 and time.monotonic() < deadline and not f.done():
        used = sum(w["cores_used"] for w in mex.status()["workers"])
        time.sleep(0.05)
    assert used == 2
    assert f.result(TIMEOUT).returncode == 0


def test_c_program_allreduce(mex, tmp_path):
    if shutil.which("mpicc") is None:
        pytest.skip("mpicc (libopenmpi-dev) is not installed")
    src = tmp_path / "hello.c"
    src.write_text(HELLO_C)
    exe = tmp_path / "hello"
    subprocess.run(["mpicc", "-O1", "-o", str(exe), str(src)], check=True,
                   timeout=TIMEOUT)
    # The program is staged into the sandbox as an input.
    mf = xylem.MPIFunction("./{prog}", ranks=2, walltime=TIMEOUT)
    r = mex.options(inputs=[xylem.File(exe)]).submit(
        mf, prog="hello").result(TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["rank 0 of 2 sum 1",
                                             "rank 1 of 2 sum 1"]


def test_walltime_gives_124_and_stops_the_ranks(mex):
    mark = "31.4159"  # a sleep that no one else runs
    mf = xylem.MPIFunction(f"sh -c 'echo up; exec sleep {mark}'", ranks=2,
                           walltime=1)
    t = time.monotonic()
    r = mex.submit(mf).result(TIMEOUT)
    assert r.returncode == 124
    assert r.stdout == "up\nup\n"
    assert time.monotonic() - t < 10
    # The task ended only once mpirun had stopped its ranks.
    left = subprocess.run(["pgrep", "-f", f"sleep {mark}"],
                          capture_output=True, text=True).stdout
    assert left == ""


def test_more_than_one_node_is_refused():
    with pytest.raises(NotImplementedError, match="nodes=2.*not yet"
                                                  " supported"):
        xylem.MPIFunction("./solver", nodes=2, ranks_per_node=2)
    with pytest.raises(ValueError, match="ranks_per_node"):
        xylem.MPIFunction("./solver", ranks=4, ranks_per_node=2)
    with pytest.raises(ValueError, match="ranks must be"):
        xylem.MPIFunction("./solver", ranks=0)
    mf = xylem.MPIFunction("./solver", nodes=1, ranks_per_node=3)
    assert (mf.ranks, mf.cores, mf.prefix()) == (
        3, 3, "mpirun -np 3 --oversubscribe")


def test_called_locally(tmp_path):
    mf = xylem.MPIFunction("sh -c 'echo $OMPI_COMM_WORLD_RANK'", ranks=2)
    r = mf()
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == ["0", "1"]
