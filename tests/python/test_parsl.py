"""xylem.parsl.XylemExecutor under Parsl's DataFlowKernel: python, bash
and join apps, Files staged without a shared path, standard streams,
resource specifications, retries, and workers started through a Parsl
provider (docs/python.md, "Parsl")."""

import os
import sys
import time

import pytest

parsl = pytest.importorskip("parsl")

from parsl import File, bash_app, join_app, python_app  # noqa: E402
from parsl.config import Config  # noqa: E402

from conftest import TIMEOUT  # noqa: E402
from xylem.parsl import XylemExecutor  # noqa: E402
from xylem.parsl.errors import (XylemResourcesExhausted,  # noqa: E402
                                XylemTimeout)


@python_app
def square(x):
    return x * x


@python_app
def where():
    return os.getcwd()


@python_app
def upper(inputs=(), outputs=()):
    # Paths as the task sees them: names in its sandbox, not ours.
    assert not os.path.isabs(inputs[0].filepath)
    with open(inputs[0]) as f, open(outputs[0], "w") as g:
        g.write(f.read().upper())
    return inputs[0].filepath, outputs[0].filepath


@python_app
def concat(a, b, outputs=()):
    with open(a) as f, open(b) as g, open(outputs[0], "w") as h:
        h.write(f.read() + g.read())


@python_app
def no_output(outputs=()):
    raise ValueError("no output made")


@bash_app
def echo(msg, stdout=None, stderr=None):
    return f"echo {msg}; echo err-{msg} >&2"


@bash_app
def write(msg, outputs=(), stdout=None, stderr=None):
    return f"echo {msg} > {outputs[0]}; cat {outputs[0]}"


@bash_app
def exit_with(code):
    return f"exit {code}"


@python_app
def read_undeclared(path):
    with open(path) as f:
        return f.read()


@bash_app
def run_tool(inputs=(), stderr=None):
    return "./tool.sh"


@bash_app
def cat_undeclared(stderr=None):
    return "cat input.txt"


@join_app
def squares_sum(n):
    return total(inputs=[square(i) for i in range(n)])


@python_app
def total(inputs=()):
    return sum(inputs)


@python_app
def flaky(counter, succeed_at):
    # The counter is on this machine's filesystem (local workers share
    # it), the one way to count tries across fresh library instances.
    n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    with open(counter, "w") as f:
        f.write(str(n))
    if n < succeed_at:
        raise RuntimeError(f"try {n}")
    return n


@python_app
def cores_env(parsl_resource_specification={}):
    return int(os.environ["CORES"])


@python_app
def hog(mb, parsl_resource_specification={}):
    import time
    b = bytearray(mb << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    time.sleep(3)
    return len(b)


@python_app
def nap(s, parsl_resource_specification={}):
    import time
    time.sleep(s)
    return s


@pytest.fixture(scope="module")
def dfk(tmp_path_factory):
    """A DataFlowKernel with a XylemExecutor of two local workers of two
    cores each, and two retries."""
    run_dir = tmp_path_factory.mktemp("runinfo")
    config = Config(executors=[XylemExecutor(workers=2, cores_per_worker=2)],
                    retries=2, run_dir=str(run_dir), strategy="none")
    with parsl.load(config) as d:
        yield d
    parsl.clear()


def test_python_app(dfk):
    assert square(7).result(TIMEOUT) == 49
    assert [f.result(TIMEOUT) for f in [square(i) for i in range(20)]] == \
        [i * i for i in range(20)]


def test_runs_in_a_sandbox(dfk, tmp_path):
    assert where().result(TIMEOUT) != os.getcwd()


def test_bash_app_stdout_stderr(dfk, tmp_path):
    out, err = tmp_path / "sub" / "echo.out", tmp_path / "echo.err"
    assert echo("hi", stdout=str(out), stderr=str(err)).result(TIMEOUT) == 0
    assert out.read_text() == "hi\n"
    assert err.read_text().endswith("err-hi\n")
    # The default mode appends, as on a shared filesystem; "w" writes over.
    echo("again", stdout=str(out), stderr=str(err)).result(TIMEOUT)
    assert out.read_text() == "hi\nagain\n"
    echo("new", stdout=(str(out), "w"), stderr=str(err)).result(TIMEOUT)
    assert out.read_text() == "new\n"


def test_bash_app_same_file_for_both(dfk, tmp_path):
    log = str(tmp_path / "both.log")
    echo("x", stdout=log, stderr=log).result(TIMEOUT)
    text = open(log).read()
    assert "x\n" in text and "err-x\n" in text


def test_bash_app_failure(dfk):
    with pytest.raises(parsl.app.errors.BashExitFailure):
        exit_with(3).result(TIMEOUT)


def test_join_app(dfk):
    assert squares_sum(5).result(TIMEOUT) == 0 + 1 + 4 + 9 + 16


def test_files_without_a_shared_path(dfk, tmp_path, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    dst = tmp_path / "made" / "here" / "out.txt"  # no such directory yet
    f = upper(inputs=[File(str(src))], outputs=[File(str(dst))])
    seen_in, seen_out = f.result(TIMEOUT)
    assert dst.read_text() == "HELLO"
    assert seen_in != str(src) and seen_out != str(dst)
    # An output feeds the next task through its DataFuture; positional
    # Files are inputs; a relative path keeps its name in the sandbox.
    monkeypatch.chdir(tmp_path)
    w = write("bash", outputs=[File("rel/w.txt")],
              stdout=str(tmp_path / "w.out"))
    c = concat(File(str(src)), w.outputs[0],
               outputs=[File(str(tmp_path / "cat.txt"))])
    c.result(TIMEOUT)
    assert (tmp_path / "rel" / "w.txt").read_text() == "bash\n"
    assert (tmp_path / "w.out").read_text() == "bash\n"
    assert (tmp_path / "cat.txt").read_text() == "hellobash\n"


def test_long_run_gives_files_back(dfk, tmp_path):
    """Each task's standard streams, outputs and the staged copies it
    reads are the manager's only while the task needs them: rounds of
    tasks leave the manager's count of files where it was."""
    xy = dfk.executors["xylem"]._xy
    src = tmp_path / "in.txt"
    src.write_text("in")

    start = xy.stats()["files"]  # inputs of earlier tests, kept

    def round_(r, n):
        ws = [write(f"{r}-{i}", outputs=[File(str(tmp_path / f"w{r}-{i}"))],
                    stdout=str(tmp_path / f"o{r}-{i}"),
                    stderr=str(tmp_path / f"e{r}-{i}")) for i in range(n)]
        cs = [concat(File(str(src)), w.outputs[0],
                     outputs=[File(str(tmp_path / f"c{r}-{i}"))])
              for i, w in enumerate(ws)]
        for f in ws + cs:
            f.result(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while xy.stats()["files"] > start + 1 and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        return xy.stats()["files"] - start

    # Left: in.txt alone, declared once for every task that reads it.
    assert round_(1, 20) == 1
    assert round_(2, 40) == 1
    assert (tmp_path / "c2-39").read_text() == "in2-39\n"


def test_output_not_made(dfk, tmp_path):
    out = tmp_path / "never.txt"
    with pytest.raises(ValueError, match="no output made"):
        no_output(outputs=[File(str(out))]).result(TIMEOUT)
    assert not out.exists()


def test_resource_specification(dfk):
    spec = {"cores": 2, "memory": 500, "disk": 100, "gpus": 0}
    assert cores_env(parsl_resource_specification=spec).result(TIMEOUT) == 2
    assert cores_env(parsl_resource_specification={}).result(TIMEOUT) == 1


def test_memory_limit(dfk):
    # The warm process with Parsl loaded takes some 60 MB already.
    with pytest.raises(XylemResourcesExhausted, match="memory"):
        hog(400, parsl_resource_specification={"memory": 250}) \
            .result(TIMEOUT)


def test_walltime(dfk):
    with pytest.raises(parsl.app.errors.AppTimeout):
        nap(30, parsl_resource_specification={"walltime": 0.5}) \
            .result(TIMEOUT)
    with pytest.raises(XylemTimeout, match="time"):
        nap(30, parsl_resource_specification={"walltime": 0.5}) \
            .result(TIMEOUT)


def test_retries(dfk, tmp_path):
    # Fails twice, then succeeds on the third try (retries=2).
    counter = str(tmp_path / "count")
    f = flaky(counter, 3)
    assert f.result(TIMEOUT) == 3
    assert f.task_record["fail_count"] == 2
    # Fails on every try: the last try's exception.
    counter2 = str(tmp_path / "count2")
    with pytest.raises(RuntimeError, match="try 3"):
        flaky(counter2, 10).result(TIMEOUT)
    assert open(counter2).read() == "3"


def hint(e):
    """The hint on e: its notes, or its message before Python 3.11."""
    return " ".join(getattr(e, "__notes__", [])) + str(e)


needs_notes = pytest.mark.skipif(sys.version_info < (3, 11),
                                 reason="exception notes are Python 3.11+")


def test_undeclared_relative_path_hint(dfk, tmp_path, monkeypatch):
    # The file is here, but the app runs in a sandbox: the same
    # FileNotFoundError as before, saying how to declare it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as e:
        read_undeclared("input.txt").result(TIMEOUT)
    assert "inputs=[File('input.txt')]" in hint(e.value)
    assert "shared_fs=True" in hint(e.value)
    # Declared, it is there.
    assert read_undeclared(File("input.txt")).result(TIMEOUT) == "x"
    # No hint for a path that is missing here too.
    with pytest.raises(FileNotFoundError) as e:
        read_undeclared(str(tmp_path / "nowhere.txt")).result(TIMEOUT)
    assert "inputs=" not in hint(e.value)


@needs_notes
def test_bash_app_not_found_hint(dfk, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    # From its stderr: the path the shell did not find.
    with pytest.raises(parsl.app.errors.BashExitFailure) as e:
        run_tool(stderr="err.txt").result(TIMEOUT)
    assert "'./tool.sh'" in hint(e.value)
    assert "inputs=[File(" in hint(e.value)
    # Without stderr, from exit code 127.
    with pytest.raises(parsl.app.errors.BashExitFailure) as e:
        run_tool().result(TIMEOUT)
    assert "127" in hint(e.value) and "inputs=[File(" in hint(e.value)
    with pytest.raises(parsl.app.errors.BashExitFailure) as e:
        cat_undeclared(stderr="err.txt").result(TIMEOUT)
    assert "inputs=[File('input.txt')]" in hint(e.value)
    # Declared, the program is there, and runs.
    assert run_tool(inputs=[File("tool.sh")]).result(TIMEOUT) == 0
    # A failure of the app's own has no hint.
    with pytest.raises(parsl.app.errors.BashExitFailure) as e:
        exit_with(3).result(TIMEOUT)
    assert not getattr(e.value, "__notes__", None)


def test_provider(tmp_path):
    from parsl.providers import LocalProvider
    parsl.clear()
    provider = LocalProvider(init_blocks=0, min_blocks=0, max_blocks=3)
    ex = XylemExecutor(label="xylem_provider", cores_per_worker=2,
                       provider=provider, idle_timeout=2)
    # Parsl's own strategy would start blocks for queued tasks: it is not
    # the one that runs here.
    config = Config(executors=[ex], run_dir=str(tmp_path / "runinfo"),
                    strategy="htex_auto_scale", strategy_period=0.2)
    with parsl.load(config):
        assert square(9).result(TIMEOUT) == 81
        pool = ex._xy.status()["pools"][0]
        assert pool["provider"] == "external"
        # One one-core task: one job, though max_blocks is 3.
        assert pool["submitted"] == 1, pool
        # The job's worker connected with the cores it was told, and the
        # provider wrote its script where the DataFlowKernel said.
        assert ex._xy.stats()["cores_total"] == 2
        assert os.listdir(provider.script_dir)
        # Two-core tasks of a second, six at once: three jobs, the most
        # it may have.
        spec = {"cores": 2}
        futures = [nap(1, parsl_resource_specification=spec)
                   for _ in range(6)]
        for f in futures:
            f.result(TIMEOUT)
        pool = ex._xy.status()["pools"][0]
        assert pool["submitted"] == 3, pool
        assert not ex.blocks_to_job_id  # Parsl's blocks: none
        # Idle, the workers are released: their jobs end.
        deadline = time.monotonic() + 30
        while ex._xy.stats()["workers_connected"] and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert ex._xy.stats()["workers_connected"] == 0
    parsl.clear()
