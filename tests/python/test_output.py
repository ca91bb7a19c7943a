"""What tasks print, where a user looks for it (docs/python.md, "What a
function prints"; docs/history.md): a function's prints reach the caller
(as written, prefixed, or a per-call log), a failed command's output is in
its Future's exception and in the run history under the function's name,
and xylem.progress shows a set of futures."""

import io
import os
import sqlite3
import sys
import types

import pytest

import xylem
from conftest import TIMEOUT


def chatty(x):
    print(f"stdout line {x}")
    print(f"stderr line {x}", file=sys.stderr)
    return x + 1


def chatty_then_fails(x):
    print(f"before the failure {x}")
    raise KeyError(x)


def quiet(x):
    return x


def test_prints_reach_the_callers_terminal(make_executor, capfd):
    ex = make_executor(workers=1)
    assert ex.submit(chatty, 1).result(timeout=TIMEOUT) == 2
    with pytest.raises(KeyError):
        ex.submit(chatty_then_fails, 7).result(timeout=TIMEOUT)
    out, err = capfd.readouterr()
    assert "stdout line 1\n" in out
    assert "stderr line 1\n" in err
    assert "before the failure 7\n" in out


def test_prints_prefixed(make_executor, capfd):
    ex = make_executor(workers=1, call_output="prefix")
    ex.submit(chatty, 2).result(timeout=TIMEOUT)
    out, err = capfd.readouterr()
    assert f"[{__name__}.chatty] stdout line 2\n" in out
    assert f"[{__name__}.chatty] stderr line 2\n" in err


def test_prints_to_a_log_per_call(make_executor, tmp_path, capfd):
    logs = tmp_path / "logs"
    ex = make_executor(workers=1, call_output=str(logs))
    futures = [ex.submit(chatty, i) for i in range(3)]
    futures.append(ex.submit(quiet, 9))
    assert [f.result(timeout=TIMEOUT) for f in futures] == [1, 2, 3, 9]
    files = sorted(os.listdir(logs))
    assert len(files) == 3, files  # the quiet call wrote none
    texts = sorted(open(logs / f).read() for f in files)
    assert all(t.startswith("stdout line") and "--- stderr ---" in t
               for t in texts), texts
    assert "stdout line" not in capfd.readouterr().out


def test_prints_dropped(make_executor, capfd):
    ex = make_executor(workers=1, call_output=None)
    ex.submit(chatty, 3).result(timeout=TIMEOUT)
    assert "stdout line 3" not in capfd.readouterr().out


def test_bad_call_output(make_executor):
    with pytest.raises(ValueError):
        make_executor(workers=0, call_output=42)


def test_failed_command_output_in_exception_and_history(make_executor,
                                                        tmp_path):
    db = tmp_path / "run.db"
    ex = make_executor(workers=1, history=str(db))
    sh = xylem.ShellFunction("echo 'disk quota hit on /scratch' >&2;"
                             " exit 4", check=True)
    fut = ex.submit(sh)
    with pytest.raises(xylem.TaskFailed) as info:
        fut.result(timeout=TIMEOUT)
    assert "disk quota hit on /scratch" in info.value.output
    assert "disk quota hit on /scratch" in str(info.value)
    assert info.value.exit_code == 4
    # Without check, the same exit is a result, as before.
    r = ex.submit(xylem.ShellFunction("echo out; exit 4")).result(
        timeout=TIMEOUT)
    assert r.returncode == 4 and r.stdout == "out\n"
    assert ex.submit(chatty, 5).result(timeout=TIMEOUT) == 6
    ex.shutdown(wait=True)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT tag, output FROM task_events WHERE"
                       " event = 'done'").fetchall()
    con.close()
    tags = {t for t, _ in rows}
    # Calls are named by their function's qualified name.
    assert f"{__name__}.chatty" in tags, tags
    # A ShellFunction's task keeps the wrapper's output, which holds the
    # command's tails.
    shell_out = [o for t, o in rows if o and "disk quota" in o]
    assert shell_out, rows


def test_progress_plain_text(make_executor):
    ex = make_executor(workers=2)
    futures = [ex.submit(quiet, i) for i in range(20)]
    futures.append(ex.submit(chatty_then_fails, 0))
    buf = io.StringIO()
    done = xylem.progress(futures, file=buf, desc="batch")
    assert done == futures and all(f.done() for f in futures)
    last = buf.getvalue().strip().splitlines()[-1]
    assert last.startswith("progress: batch: 21/21 done, 1 failed"), last


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_terminal_line(make_executor):
    ex = make_executor(workers=2)
    futures = [ex.submit(quiet, i) for i in range(10)]
    buf = _Tty()
    xylem.progress(futures, file=buf)
    text = buf.getvalue()
    assert text.startswith("\r[")
    assert "\n" not in text[:-1]  # one line, rewritten in place
    assert "10/10 done, 0 failed" in text.split("\r")[-1]
    assert text.endswith("\n")


def test_progress_in_jupyter(make_executor, monkeypatch):
    """Under a Jupyter kernel: one display, updated in place."""
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj.data))

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(("display", obj.data))
        return Handle()

    class ZMQInteractiveShell:
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()
    disp = types.ModuleType("IPython.display")
    disp.display = display
    disp.HTML = type("HTML", (), {"__init__": lambda s, d: setattr(
        s, "data", d)})
    ipython.display = disp
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", disp)

    ex = make_executor(workers=2)
    futures = [ex.submit(quiet, i) for i in range(5)]
    xylem.progress(futures)
    assert [k for k, _ in shown].count("display") == 1
    assert "5/5 done" in shown[-1][1]
    assert "<progress" in shown[-1][1]


def test_worker_log_dir_keeps_library_output(make_executor, tmp_path):
    """`xylem worker --log-dir`: the worker's log and each library
    instance's output are files that outlive the worker."""
    import subprocess
    from xylem.workers import find_xylem
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    logs = tmp_path / "logs"
    ex = make_executor(workers=0, secret_file=str(secret))
    w = subprocess.Popen(
        [find_xylem(), "worker", f"127.0.0.1:{ex.port}", "--secret-file",
         str(secret), "--cores", "1", "--name", "w1", "--tls-ca",
         ex.tls_ca, "--log-dir", str(logs)],
        stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert ex.submit(chatty, 11).result(timeout=TIMEOUT) == 12
        ex.shutdown(wait=True)
        w.wait(TIMEOUT)
    finally:
        w.kill()
    names = os.listdir(logs)
    worker_logs = [n for n in names if n.startswith("worker-w1-")]
    lib_logs = [n for n in names if n.startswith("library-")]
    assert len(worker_logs) == 1 and lib_logs, names
    assert "connected to" in (logs / worker_logs[0]).read_text()
    text = "".join((logs / n).read_text() for n in lib_logs)
    assert "stdout line 11" in text and "stderr line 11" in text


def test_progress_stays_the_function():
    """xylem.progress is the function whatever was touched first (a lazy
    load of Progress imported the submodule of the same name, which then
    stood for xylem.progress: "module is not callable")."""
    import subprocess
    code = ("import xylem; xylem.Progress; import xylem.progress; "
            "from xylem import *; "
            "assert callable(xylem.progress) and callable(progress)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, env=dict(os.environ), timeout=60)
    assert r.returncode == 0, r.stderr
