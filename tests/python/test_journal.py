"""xylem.Executor(journal=DIR): a program run again on its journal gets
the results of the calls and commands that finished before without
running them again (docs/durability.md, "Results"; docs/python.md).

Each test runs a real program (PROGRAM below) in a process of its own,
with its own manager and local workers, once or more on one journal.
Each call appends a line to a marks file when it runs, so the marks say
which calls ran in which run.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TIMEOUT

PROGRAM = r'''
import json, os, sys, time
import xylem

journal, marks, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
changed = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
run = os.environ.get("RUN", "1")

def work(i, k):
    # The run is read in the call, not passed: it is no part of the call.
    with open(marks, "a") as f:
        f.write(f"{os.environ.get('MARK_RUN', '?')} call {i}\n")
    # Read here: a global of __main__ is pickled with the function, and
    # so is part of the call.
    time.sleep(float(os.environ.get("NAP", "0")))
    # Every third result is over the journal's inline limit (a file).
    return {"i": i, "v": i * i + k, "pad": "p" * (9000 if i % 3 == 0 else 3)}

def fails(i):
    with open(marks, "a") as f:
        f.write(f"{os.environ.get('MARK_RUN', '?')} fails {i}\n")
    raise ValueError(f"no {i}")

if __name__ == "__main__":
    os.environ["MARK_RUN"] = run
    with xylem.Executor(workers=2, journal=journal,
                        library_env={"MARK_RUN": run},
                        journal_sync=bool(os.environ.get("SYNC"))) as ex:
        futs = [ex.submit(work, i, changed.get(str(i), 0))
                for i in range(n)]
        sh = ex.submit(xylem.ShellFunction(
            "echo shell {x}; echo \"$MARK_RUN shell\" >> " + marks),
            x=changed.get("shell", 5))
        bad = ex.submit(fails, 1)
        for f in futs:
            r = f.result()
            print("R", r["i"], r["v"], len(r["pad"]), flush=True)
        print("S", sh.result().stdout.strip(), flush=True)
        print("E", repr(bad.exception()), flush=True)
        print("SKIPPED", ex.stats()["tasks_skipped"], flush=True)
'''


@pytest.fixture
def prog(tmp_path):
    p = tmp_path / "prog.py"
    p.write_text(PROGRAM)
    return p


def env_for(run, **more):
    env = dict(os.environ, RUN=str(run), MARK_RUN=str(run))
    # The program imports xylem as the tests do (conftest.py).
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "python")] +
        [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update({k: str(v) for k, v in more.items()})
    return env


def run_prog(prog, journal, marks, n, changed=None, run=1, **env):
    args = [sys.executable, str(prog), str(journal), str(marks), str(n)]
    if changed:
        import json
        args.append(json.dumps(changed))
    p = subprocess.run(args, env=env_for(run, **env), capture_output=True,
                       text=True, timeout=TIMEOUT * 2)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def marks_of(marks, run):
    if not marks.exists():
        return []
    return [line.split(" ", 1)[1] for line in marks.read_text().splitlines()
            if line.split(" ", 1)[0] == str(run)]


def results(lines):
    return sorted(line for line in lines if line[:2] in ("R ", "S "))


def test_run_again_runs_nothing_and_gets_the_same_results(tmp_path, prog):
    journal, marks = tmp_path / "journal", tmp_path / "marks"
    first = run_prog(prog, journal, marks, 8, run=1)
    assert sorted(marks_of(marks, 1)) == sorted(
        [f"call {i}" for i in range(8)] + ["shell", "fails 1"])
    assert "SKIPPED 0" in first
    # Large results went to files, one per call over the inline limit.
    assert len(os.listdir(journal / "results")) == 3
    second = run_prog(prog, journal, marks, 8, run=2)
    assert marks_of(marks, 2) == []
    assert results(second) == results(first)
    assert "S shell 5" in second
    # A call that raised is remembered too: its exception comes back.
    assert "E ValueError('no 1')" in second
    assert "SKIPPED 10" in second


def test_a_changed_argument_runs_that_call_alone(tmp_path, prog):
    journal, marks = tmp_path / "journal", tmp_path / "marks"
    run_prog(prog, journal, marks, 6, run=1)
    out = run_prog(prog, journal, marks, 6, {"3": 100, "shell": 6}, run=2)
    assert sorted(marks_of(marks, 2)) == ["call 3", "shell"]
    assert "R 3 109 9000" in out and "S shell 6" in out
    assert "R 4 16 3" in out  # from the journal


def test_a_lost_result_file_runs_its_call_again(tmp_path, prog):
    journal, marks = tmp_path / "journal", tmp_path / "marks"
    first = run_prog(prog, journal, marks, 6, run=1)
    # Calls 0 and 3 have large results: one file cut, one changed.
    files = sorted((journal / "results").iterdir())
    assert len(files) == 2
    files[0].write_bytes(files[0].read_bytes()[:100])
    data = bytearray(files[1].read_bytes())
    data[-5] ^= 1
    files[1].write_bytes(bytes(data))
    second = run_prog(prog, journal, marks, 6, run=2)
    assert sorted(marks_of(marks, 2)) == ["call 0", "call 3"]
    assert results(second) == results(first)


def test_killed_half_way_every_call_runs_once(tmp_path, prog):
    """The program is killed with SIGKILL after half its results; its
    local workers live on (their lease) with the calls they hold. Run
    again on the journal, on the port and secret kept there, it gets
    every result: finished calls from the journal, the others adopted
    from the workers that come back, or run; no call runs twice."""
    journal, marks = tmp_path / "journal", tmp_path / "marks"
    n = 12
    args = [sys.executable, str(prog), str(journal), str(marks), str(n)]
    p = subprocess.Popen(args, env=env_for(1, NAP=0.3),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    seen = 0
    try:
        while seen < n // 2:
            line = p.stdout.readline()
            assert line, "the program ended early"
            seen += line.startswith("R ")
    finally:
        os.killpg(p.pid, signal.SIGKILL)  # its workers have their own
        p.wait(timeout=TIMEOUT)
    assert (journal / "port").exists() and (journal / "secret").exists()
    out = run_prog(prog, journal, marks, n, run=2, NAP=0.3)
    assert [line for line in out if line.startswith("R ")] == [
        f"R {i} {i * i} {9000 if i % 3 == 0 else 3}" for i in range(n)]
    ran = [m.split(" ", 1)[1] for m in marks.read_text().splitlines()]
    assert sorted(ran) == sorted([f"call {i}" for i in range(n)] +
                                 ["shell", "fails 1"]), ran
    skipped = int(next(x for x in out if x.startswith("SKIPPED"))[8:])
    assert n // 2 <= skipped < n + 2


def test_killed_with_its_workers_runs_only_what_was_not_finished(
        tmp_path, prog):
    """The program and its workers killed with SIGKILL half way (the
    machine's crash, as far as they know): run again, no call whose
    Future the program saw resolved runs again, and every result is
    right."""
    journal, marks = tmp_path / "journal", tmp_path / "marks"
    n = 12
    args = [sys.executable, str(prog), str(journal), str(marks), str(n)]
    p = subprocess.Popen(args, env=env_for(1, NAP=0.3),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    seen = []
    try:
        while len(seen) < n // 2:
            line = p.stdout.readline()
            assert line, "the program ended early"
            if line.startswith("R "):
                seen.append(int(line.split()[1]))
    finally:
        workers = worker_pids(journal)
        os.killpg(p.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        p.wait(timeout=TIMEOUT)
    assert workers
    ran_first = marks_of(marks, 1)
    out = run_prog(prog, journal, marks, n, run=2,
                   XYLEM_ADOPT_WAIT=1)
    ran_again = [int(m.split()[1]) for m in marks_of(marks, 2)
                 if m.startswith("call ")]
    # A call whose Future the program saw resolved was recorded first.
    assert not set(seen) & set(ran_again), (seen, ran_again)
    assert [line for line in out if line.startswith("R ")] == [
        f"R {i} {i * i} {9000 if i % 3 == 0 else 3}" for i in range(n)]
    never = {i for i in range(n) if f"call {i}" not in ran_first}
    assert never <= set(ran_again)
    assert len(ran_again) == len(set(ran_again)) < n


def worker_pids(journal):
    """The `xylem worker` processes connected to the port kept in the
    journal (the program's local workers)."""
    port = (journal / "port").read_text().strip()
    pids = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmd and f"127.0.0.1:{port}".encode() in cmd:
            pids.append(int(d.name))
    return pids


def test_sync_mode_and_compaction_bound_the_results(tmp_path):
    """A call that writes an output file is known by that file's path
    too: a later run of it with another argument replaces its record,
    and compaction then drops the old result and its file."""
    prog = tmp_path / "outs.py"
    prog.write_text(r'''
import sys, xylem
journal, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])

def write(path, k):
    with open(path, "w") as f:
        f.write(str(k))
    return "r" * (5000 + k)

with xylem.Executor(workers=1, journal=journal, journal_sync=True) as ex:
    f = ex.options(outputs=[xylem.File(out)]).submit(write, "out", k)
    print(len(f.result()), ex.stats()["tasks_skipped"])
''')
    journal, out = tmp_path / "journal", tmp_path / "out"

    def run(k):
        p = subprocess.run(
            [sys.executable, str(prog), str(journal), str(out), str(k)],
            env=env_for(0, XYLEM_JOURNAL_COMPACT_BYTES=200),
            capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()

    for k in range(4):
        assert run(k) == [str(5000 + k), "0"]
    assert run(3) == ["5003", "1"]  # from the journal
    # One task's record and one result file left, not four.
    assert len(os.listdir(journal / "results")) == 1
    assert (journal / "snapshot").exists()
    assert out.read_text() == "3"


def test_a_second_executor_on_a_journal_is_refused(tmp_path, make_executor):
    ex = make_executor(workers=1, journal=tmp_path / "j")
    with pytest.raises(OSError, match="in use by another manager"):
        make_executor(workers=1, journal=tmp_path / "j")
    assert ex.submit(pow, 2, 5).result(timeout=TIMEOUT) == 32
