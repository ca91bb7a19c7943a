"""Python calls through a shared endpoint (docs/endpoint.md): a real
`xylem endpoint` started as root, real accounts made by the test, each
user's session server under that user's uid, and clients run as those
users. A client that leaves and a session server killed with SIGKILL
lose no call."""

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or
    not os.environ.get("XYLEM_BUILD_DIR"),
    reason="needs root, useradd and a build directory (XYLEM_BUILD_DIR)")

USERS = ("xyepy_a", "xyepy_b")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def accounts():
    made = []
    for u in USERS:
        if subprocess.run(["id", u], capture_output=True).returncode:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", u],
                           check=True)
            made.append(u)
    yield {u: pwd.getpwnam(u) for u in USERS}
    for u in USERS:
        subprocess.run(["pkill", "-KILL", "-u", u], check=False)
    time.sleep(0.2)
    for u in made:
        subprocess.run(["userdel", "-r", u], capture_output=True)


@pytest.fixture(scope="module")
def tree():
    """What every account can run: the package, cloudpickle, the
    extension and the program, in a 0755 directory (the checkout may sit
    under root's 0700 home)."""
    import cloudpickle
    d = Path(tempfile.mkdtemp(prefix="xyepy-"))
    build = Path(os.environ["XYLEM_BUILD_DIR"]).resolve()
    shutil.copytree(REPO / "python" / "xylem", d / "lib" / "xylem",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    shutil.copytree(os.path.dirname(cloudpickle.__file__),
                    d / "lib" / "cloudpickle",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (d / "build" / "python").mkdir(parents=True)
    for so in glob.glob(str(build / "python" / "_core*.so")):
        shutil.copy(so, d / "build" / "python")
    (d / "build" / "src" / "cli").mkdir(parents=True)
    exe = os.environ.get("XYLEM_BIN") or str(build / "src" / "cli" / "xylem")
    shutil.copy(exe, d / "build" / "src" / "cli" / "xylem")
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


PYTHON = os.path.realpath(os.path.join(sys.base_prefix, "bin", "python3"))


@pytest.fixture
def endpoint(accounts, tree):
    sock = tree / "ep.sock"
    cfg = tree / "endpoint.conf"
    cfg.write_text(
        "users = %s\nidle_exit = 30\nworkers = 1\npython = %s\n"
        "environment = PYTHONPATH=%s\nenvironment = XYLEM_BUILD_DIR=%s\n"
        % (", ".join(USERS), PYTHON, tree / "lib", tree / "build"))
    os.chmod(cfg, 0o644)
    log = open(tree / "ep.log", "w")
    p = subprocess.Popen([str(tree / "build" / "src" / "cli" / "xylem"),
                          "endpoint", "--socket", str(sock), "--config",
                          str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + TIMEOUT
    while "serving" not in (tree / "ep.log").read_text():
        assert p.poll() is None and time.monotonic() < end, \
            (tree / "ep.log").read_text()
        time.sleep(0.05)
    yield sock
    p.terminate()
    p.wait(10)
    log.close()
    for u in USERS:
        subprocess.run(["pkill", "-KILL", "-u", u], check=False)
        for log in glob.glob(os.path.join(accounts[u].pw_dir, ".xylem",
                                          "endpoint", "*.log")):
            assert "Sanitizer" not in open(log).read(), log
        shutil.rmtree(os.path.join(accounts[u].pw_dir, ".xylem"),
                      ignore_errors=True)


def run_as(user, tree, script, *args, wait=True):
    """Runs a client script as user, with the tree's package."""
    path = tree / ("client-%d.py" % time.monotonic_ns())
    path.write_text(textwrap.dedent(script))
    os.chmod(path, 0o644)
    cmd = ["runuser", "-u", user, "--", "env", "PYTHONPATH=%s" % (
        tree / "lib"), "XYLEM_BUILD_DIR=%s" % (tree / "build"), PYTHON,
        "-u", str(path)] + [str(a) for a in args]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd="/")
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=4 * TIMEOUT, cwd="/")


def _session_servers(user):
    r = subprocess.run(["pgrep", "-u", user, "-f", "xylem.endpoint serve"],
                       capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def test_calls_run_as_their_user(endpoint, accounts, tree):
    script = """
        import os, sys, xylem
        def f(x):
            return x * x, os.getuid()
        with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
            print(ex.session)
            print([fu.result() for fu in [ex.submit(f, i) for i in range(8)]])
    """
    for u in USERS:
        r = run_as(u, tree, script, endpoint)
        assert r.returncode == 0, r.stdout + r.stderr
        session, results = r.stdout.splitlines()
        assert re.fullmatch(r"[0-9a-f]{32}", session)
        uid = accounts[u].pw_uid
        assert results == str([(i * i, uid) for i in range(8)])
        (pid,) = _session_servers(u)
        st = open(f"/proc/{pid}/status").read()
        assert re.search(r"Uid:\s+%d\s+%d\s+%d\s+%d" % ((uid,) * 4), st)
    # B cannot reach A's session server: its socket is in A's 0700 tree.
    sock_a = os.path.join(accounts["xyepy_a"].pw_dir, ".xylem", "endpoint",
                          "python", "session.sock")
    r = run_as("xyepy_b", tree, """
        import socket, sys
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sys.argv[1])
            print("connected")
        except OSError as e:
            print("refused", e.errno)
    """, sock_a)
    assert r.stdout.startswith("refused"), r.stdout + r.stderr


def test_a_client_goes_away_and_another_reattaches(endpoint, accounts, tree):
    # The first client submits and leaves at once (shutdown(wait=False)
    # returns once the server wrote every call down); the calls run
    # meanwhile; a new process re-attaches and gets every result, in
    # submission order.
    first = run_as("xyepy_a", tree, """
        import sys, time, xylem
        def slow(x):
            time.sleep(0.2)
            return x + 1000
        ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
        for i in range(6):
            ex.submit(slow, i)
        ex.shutdown(wait=False)
        print(ex.session)
    """, endpoint)
    assert first.returncode == 0, first.stdout + first.stderr
    session = first.stdout.strip()
    second = run_as("xyepy_a", tree, """
        import sys, xylem
        ex = xylem.Executor(endpoint="unix:" + sys.argv[1],
                            session=sys.argv[2])
        print([f.result(timeout=120) for f in ex.futures()])
        ex.shutdown()
    """, endpoint, session)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.strip() == str([i + 1000 for i in range(6)])
    # B cannot name A's session: A's sessions are A's server's.
    third = run_as("xyepy_b", tree, """
        import sys, xylem
        try:
            xylem.Executor(endpoint="unix:" + sys.argv[1],
                           session=sys.argv[2])
            print("attached")
        except ValueError as e:
            print("refused:", e)
    """, endpoint, session)
    assert third.stdout.startswith("refused: no session"), \
        third.stdout + third.stderr


def test_a_killed_session_server_loses_no_call(endpoint, accounts, tree):
    client = run_as("xyepy_a", tree, """
        import sys, time, xylem
        def slow(x):
            time.sleep(0.3)
            return -x
        ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
        futs = [ex.submit(slow, i) for i in range(10)]
        ex.flush()
        print("flushed", flush=True)
        print([f.result(timeout=120) for f in futs])
        ex.shutdown()
    """, endpoint, wait=False)
    assert client.stdout.readline().strip() == "flushed"
    (pid,) = _session_servers("xyepy_a")
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    out, err = client.communicate(timeout=4 * TIMEOUT)
    assert client.returncode == 0, out + err
    assert out.strip() == str([-i for i in range(10)])
    (pid2,) = _session_servers("xyepy_a")
    assert pid2 != pid
    log = (tree / "ep.log").read_text()
    assert "session server died (signal 9); starting it again" in log


def test_shell_functions_through_the_endpoint(endpoint, accounts, tree):
    r = run_as("xyepy_b", tree, """
        import sys, xylem
        with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
            ok = ex.submit(xylem.ShellFunction("echo out {0}; echo err >&2;"
                                               " id -u"), "hi").result()
            print(ok.returncode, ok.stdout.split(), ok.stderr.strip())
            slow = ex.submit(xylem.ShellFunction("sleep 30", walltime=1))
            try:
                r = slow.result(timeout=60)
                print("walltime", r.returncode)
            except Exception as e:
                print("walltime", type(e).__name__)
    """, endpoint)
    assert r.returncode == 0, r.stdout + r.stderr
    first, second = r.stdout.splitlines()
    uid = accounts["xyepy_b"].pw_uid
    assert first == "0 ['out', 'hi', '%d'] err" % uid
    assert second.startswith("walltime") and second != "walltime 0", second
