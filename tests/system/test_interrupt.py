"""SIGINT and SIGTERM on `xylem run`, `xylem cwl` and `xylem manager`: the
running tasks are cancelled and their processes killed, the command exits
promptly (xylem run and cwl with 128 + the signal; xylem manager with 0), and
nothing is left in $TMPDIR: neither the command's own directory (with the
secret) nor the manager's staging directory."""

import os
import signal
import textwrap
import time

import pytest

from helpers import task, wait_for, write_workflow


def alive(pid):
    """Whether pid is a process that has not exited (zombies count as
    gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def fresh_tmpdir(xylem, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return tmpdir, dict(xylem.env, TMPDIR=str(tmpdir))


def slow_tool(tmp_path):
    """A tool that writes its pid to a file and sleeps for a minute."""
    pidfile = tmp_path / "sleep.pid"
    tool = tmp_path / "slow.cwl"
    tool.write_text(textwrap.dedent(f"""\
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "echo $$ > {pidfile}; exec sleep 60"]
        inputs: []
        outputs: []
        """))
    return tool, pidfile


def started_pid(pidfile):
    return int(wait_for(lambda: pidfile.exists() and pidfile.read_text()
                        .strip(), 30, what="the tool to start"))


@pytest.mark.parametrize("signals", [
    [signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["sigint", "sigterm", "sigint-twice"])
def test_cwl_interrupted(xylem, tmp_path, signals):
    tool, pidfile = slow_tool(tmp_path)
    tmpdir, env = fresh_tmpdir(xylem, tmp_path)
    p = xylem.start("cwl", "--outdir", tmp_path / "out", tool, env=env)
    pid = started_pid(pidfile)
    assert any(tmpdir.iterdir())
    t0 = time.monotonic()
    for sig in signals:
        p.signal(sig)
    rc = p.wait(30)
    took = time.monotonic() - t0
    assert rc == 128 + signals[0], p.output
    assert took < 10, (took, p.output)
    assert "interrupted, cancelling the task" in p.output, p.output
    wait_for(lambda: not alive(pid), 10, what="the tool's process to go")
    assert list(tmpdir.iterdir()) == [], p.output


@pytest.mark.parametrize("signals", [
    [signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["sigint", "sigterm", "sigint-twice"])
def test_run_interrupted(xylem, tmp_path, signals):
    pids = tmp_path / "pids"
    pids.mkdir()
    # Each pid file appears whole (a rename), so a file seen is readable.
    tasks = [task(f"s{i}", f"echo $$ > {pids}/{i}.tmp;"
                  f" mv {pids}/{i}.tmp {pids}/{i}.pid; exec sleep 60")
             for i in range(4)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    tmpdir, env = fresh_tmpdir(xylem, tmp_path)
    p = xylem.start("run", wf, "--workers", "2", env=env)
    wait_for(lambda: len(list(pids.glob("*.pid"))) == 2, 30,
             what="two tasks to start")
    running = [int(f.read_text()) for f in pids.glob("*.pid")]
    t0 = time.monotonic()
    for sig in signals:
        p.signal(sig)
    rc = p.wait(30)
    assert rc == 128 + signals[0], p.output
    assert time.monotonic() - t0 < 10, p.output
    assert "interrupted, cancelling tasks" in p.output, p.output
    assert "4 cancelled" in p.output, p.output
    for pid in running:
        wait_for(lambda: not alive(pid), 10, what="the tasks' processes")
    assert list(tmpdir.iterdir()) == [], p.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["sigint", "sigterm"])
def test_manager_signalled_leaves_nothing(xylem, tmp_path, secret_file,
                                          sig):
    tmpdir, env = fresh_tmpdir(xylem, tmp_path)
    p = xylem.start("manager", "--workers", 1, env=env)
    p.wait_line(r"worker \S+ ready", 30)
    assert any(tmpdir.iterdir())
    p.signal(sig)
    assert p.wait(30) == 0, p.output
    assert f"stopping on signal {int(sig)}" in p.output
    assert list(tmpdir.iterdir()) == [], p.output


def test_cwl_on_a_manager_interrupted(xylem, tmp_path, secret_file):
    """With --manager, closing the connection cancels the task there."""
    mgr = xylem.start("manager", "--workers", 1, "--host", "127.0.0.1",
                      "--secret-file", secret_file)
    port = int(mgr.wait_line(r"listening on port (\d+)", 30).group(1))
    mgr.wait_line(r"worker \S+ ready", 30)
    tool, pidfile = slow_tool(tmp_path)
    tmpdir, env = fresh_tmpdir(xylem, tmp_path)
    p = xylem.start("cwl", "--manager", f"127.0.0.1:{port}",
                    "--secret-file", secret_file, "--outdir",
                    tmp_path / "out", tool, env=env)
    pid = started_pid(pidfile)
    p.signal(signal.SIGINT)
    assert p.wait(30) == 130, p.output
    assert "interrupted, cancelling the task" in p.output, p.output
    wait_for(lambda: not alive(pid), 10, what="the tool's process to go")
    assert list(tmpdir.iterdir()) == [], p.output
    assert mgr.p.poll() is None, mgr.output
