"""Per-call options through ex.options(...): resources, environment,
input and output files, time limits, and large arguments and results."""

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


def test_options_view_submit_and_map(ex):
    view = ex.options(cores=1, tag="view")
    assert view.submit(pyfuncs.add, 1, 2).result(TIMEOUT) == 3
    assert list(view.map(pyfuncs.add, [1, 2], [3, 4], timeout=TIMEOUT)) \
        == [4, 6]
    assert view.options(env={"A": "1"}).submit(pyfuncs.getenv, "A") \
        .result(TIMEOUT) == "1"


def test_unknown_and_bad_options(ex):
    with pytest.raises(TypeError, match="unknown option"):
        ex.options(core=2)
    with pytest.raises(ValueError):
        ex.options(cores=-1)


def test_cores(make_executor):
    ex = make_executor(workers=1, cores_per_worker=2)
    assert ex.options(cores=2).submit(pyfuncs.add, 2).result(TIMEOUT) == 2
    assert ex.stats()["cores_total"] == 2


@pytest.mark.parametrize("fresh", [False, True])
def test_env(ex, fresh):
    f = ex.options(env={"XY_TEST": "yes"}, fresh=fresh).submit(
        pyfuncs.getenv, "XY_TEST")
    assert f.result(TIMEOUT) == "yes"
    # A warm library restores its environment after the call.
    assert ex.options(fresh=fresh).submit(pyfuncs.getenv, "XY_TEST") \
        .result(TIMEOUT) is None


@pytest.mark.parametrize("fresh", [False, True])
def test_input_and_output_files(ex, tmp_path, fresh):
    src = tmp_path / "in.txt"
    src.write_text("hello xylem\n")
    dst = tmp_path / "out" / "result.txt"
    dst.parent.mkdir()
    f = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[xylem.File(dst, name="b.txt")],
                   fresh=fresh).submit(pyfuncs.upper_file, "a.txt", "b.txt")
    assert f.result(TIMEOUT) == 12
    assert dst.read_text() == "HELLO XYLEM\n"


def test_temp_between_calls(ex, tmp_path):
    """A Temp made by one call feeds the next without coming back."""
    mid = xylem.Temp("mid.txt")
    src = tmp_path / "in.txt"
    src.write_text("temp\n")
    dst = tmp_path / "out.txt"
    a = ex.options(inputs=[xylem.File(src, name="a.txt")],
                   outputs=[mid]).submit(pyfuncs.upper_file, "a.txt",
                                         "mid.txt")
    assert a.result(TIMEOUT) == 5
    b = ex.options(inputs=[mid], outputs=[xylem.File(dst, name="b.txt")]) \
        .submit(pyfuncs.upper_file, "mid.txt", "b.txt")
    assert b.result(TIMEOUT) == 5
    assert dst.read_text() == "TEMP\n"
    assert not (tmp_path / "mid.txt").exists()
    with pytest.raises(ValueError):
        xylem.Temp("x", replicas=0)


def test_input_paths_and_sandbox_names(ex, tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    f = ex.options(inputs=[str(tmp_path / "data.csv")]).submit(
        pyfuncs.cwd_files)
    assert "data.csv" in f.result(TIMEOUT)


@pytest.mark.parametrize("fresh", [False, True])
def test_time_limit(ex, fresh):
    f = ex.options(time_limit=1, fresh=fresh).submit(
        pyfuncs.sleep_then, 30, "late")
    with pytest.raises(xylem.ResourcesExhausted) as info:
        f.result(TIMEOUT)
    assert "limit" in str(info.value)
    # The next call runs (warm: in a new library instance).
    assert ex.options(fresh=fresh).submit(pyfuncs.add, 5).result(TIMEOUT) \
        == 5


@pytest.mark.parametrize("fresh", [False, True])
def test_retries_after_a_crash(ex, tmp_path, fresh):
    # The first attempt kills its process; with a retry the call runs
    # again (warm: in a new library instance) and succeeds.
    marker = tmp_path / "m"
    f = ex.options(retries=1, fresh=fresh).submit(pyfuncs.crash_once,
                                                  str(marker), "second")
    assert f.result(TIMEOUT) == "second"


def test_large_argument_goes_as_a_file(ex):
    data = b"y" * (9 << 20)  # over the 8 MiB a call message may carry
    assert ex.submit(pyfuncs.nbytes, data).result(TIMEOUT) == len(data)


def test_large_result(ex):
    f = ex.submit(pyfuncs.make_bytes, 9 << 20)
    with pytest.raises(xylem.PickleError, match="output file"):
        f.result(TIMEOUT)
    # Fresh mode brings results back as files, whatever their size.
    f = ex.options(fresh=True).submit(pyfuncs.make_bytes, 9 << 20)
    assert len(f.result(TIMEOUT)) == 9 << 20
