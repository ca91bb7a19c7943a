"""The administrator's caps on a user's workers and cores, the
schema's bounds on what a call's function implies (docs/endpoint.md,
"Limits"), and a session taken over from a client that no longer
answers ("Python sessions"): a real `xylem endpoint` started as root, real accounts made
by the test (their own names, so that this file runs beside
test_endpoint.py), clients run as those users."""

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import TIMEOUT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from accounts import local_accounts, world_tree  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or
    not os.environ.get("XYLEM_BUILD_DIR"),
    reason="needs root, useradd and a build directory (XYLEM_BUILD_DIR)")

USERS = ("xyepy_la", "xyepy_lb")
PYTHON = os.path.realpath(os.path.join(sys.base_prefix, "bin", "python3"))


@pytest.fixture(scope="module")
def accounts():
    with local_accounts(USERS) as made:
        yield made


@pytest.fixture(scope="module")
def tree():
    d = world_tree(os.environ["XYLEM_BUILD_DIR"], os.environ.get("XYLEM_BIN"),
                   prefix="xyepl-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def serving(accounts, tree, extra):
    sock = tree / "ep.sock"
    cfg = tree / "endpoint.conf"
    cfg.write_text(
        "users = %s\nidle_exit = 30\npython = %s\n"
        "environment = PYTHONPATH=%s\nenvironment = XYLEM_BUILD_DIR=%s\n"
        % (", ".join(USERS), PYTHON, tree / "lib", tree / "build") + extra)
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
    try:
        yield sock
    finally:
        p.terminate()
        p.wait(10)
        log.close()
        assert "Sanitizer" not in (tree / "ep.log").read_text()
        for u in USERS:
            subprocess.run(["pkill", "-KILL", "-u", u], check=False)
            for f in glob.glob(os.path.join(accounts[u].pw_dir, ".xylem",
                                            "endpoint", "*.log")):
                assert "Sanitizer" not in open(f).read(), f
            shutil.rmtree(os.path.join(accounts[u].pw_dir, ".xylem"),
                          ignore_errors=True)


def run_as(user, tree, script, *args):
    path = tree / ("client-%d.py" % time.monotonic_ns())
    path.write_text(textwrap.dedent(script))
    os.chmod(path, 0o644)
    cmd = ["runuser", "-u", user, "--", "env", "PYTHONPATH=%s" % (
        tree / "lib"), "XYLEM_BUILD_DIR=%s" % (tree / "build"), PYTHON,
        "-u", str(path)] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=4 * TIMEOUT, cwd="/")


def _python_log(accounts, user):
    path = os.path.join(accounts[user].pw_dir, ".xylem", "endpoint",
                        "python.log")
    return open(path).read() if os.path.exists(path) else ""


# Calls that each hold their worker for a while and say when: the most
# that overlap is the most workers the session server ran them on.
OVERLAP = """
import sys, time, xylem
def hold(i):
    t0 = time.time()
    time.sleep(0.8)
    return t0, time.time()
def most_at_once(spans):
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most
try:
    xylem.Executor(endpoint="unix:" + sys.argv[1], pools=["big"])
    print("pool: granted")
except ValueError as e:
    print("pool: refused:", e)
def warm(i):
    t0 = time.time()
    time.sleep(0.3)
    return t0, time.time()
with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
    # Until the server's workers are all up (they start with it, and a
    # sanitized build starts them slowly): warm-up calls, as many as it
    # should have, until they overlap that much (or 40 tries). Its
    # calls are measured then, and slow ones are not grouped.
    want = int(sys.argv[3])
    for _ in range(40):
        if most_at_once([f.result(120) for f in
                         [ex.submit(warm, i) for i in range(want)]]) >= want:
            break
    spans = [f.result(120) for f in [ex.submit(hold, i) for i in range(9)]]
    print("at once:", most_at_once(spans))
if sys.argv[2] == "pool":
    with xylem.Executor(endpoint="unix:" + sys.argv[1],
                        pools=["big"]) as ex:
        big = ex.options(cores=2)
        spans = [f.result(180) for f in [big.submit(hold, i)
                                         for i in range(4)]]
        print("two-core at once:", most_at_once(spans))
"""


def test_a_user_s_workers_and_cores_stay_within_their_caps(accounts, tree):
    extra = ("workers = 3\ncores_per_worker = 1\nmax_workers = 4\n"
             "user xyepy_la = max_workers 2, max_cores 3\n"
             "option cores = int 1..2\npool big = local 2 2\n")
    with serving(accounts, tree, extra) as sock:
        # A: 3 workers cut to A's max_workers 2; the pool (2 cores a
        # worker) does not fit in what A's max_cores 3 leaves (1 core).
        r = run_as("xyepy_la", tree, OVERLAP, sock, "-", 2)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("pool: refused: pool 'big' (2 cores a "
                                   "worker) does not fit your limits"), \
            r.stdout
        assert "max_workers 2 and max_cores 3" in lines[0]
        assert lines[1:] == ["at once: 2"], \
            r.stdout + _python_log(accounts, "xyepy_la")
        assert "pool big" not in _python_log(accounts, "xyepy_la")
        log = (tree / "ep.log").read_text()
        assert "capped xyepy_la's session server to 2 workers of 1 cores" \
            in log, log
        # A's manager (command tasks) is cut the same way.
        r = subprocess.run(["runuser", "-u", "xyepy_la", "--",
                            str(tree / "build" / "src" / "cli" / "xylem"),
                            "endpoint", "connect", "--socket", str(sock)],
                           capture_output=True, text=True, timeout=60,
                           cwd="/")
        assert r.returncode == 0, r.stderr
        pid = subprocess.check_output(["pgrep", "-u", "xyepy_la", "-f",
                                       "xylem manager"], text=True).split()
        argv = open("/proc/%s/cmdline" % pid[0]).read().split("\0")
        assert argv[argv.index("--workers") + 1] == "2", argv
        assert argv[argv.index("--cores-per-worker") + 1] == "1", argv
        # B: the global max_workers 4: its 3 workers, and the pool of 2
        # cut to the 1 worker left, which never runs two calls at once.
        r = run_as("xyepy_lb", tree, OVERLAP, sock, "pool", 3)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines() == [
            "pool: granted", "at once: 3",
            "two-core at once: 1"], \
            r.stdout + _python_log(accounts, "xyepy_lb")
        assert "pool big: at most 1 workers, not 2" in \
            _python_log(accounts, "xyepy_lb")
        assert "capped xyepy_lb" not in (tree / "ep.log").read_text()


def test_walltime_and_ranks_outside_the_schema_are_refused(accounts, tree):
    extra = ("workers = 1\noption time_limit = float 1..60\n"
             "option cores = int 1..2\n")
    with serving(accounts, tree, extra) as sock:
        r = run_as("xyepy_la", tree, """
import os, sys, xylem
from xylem.endpoint import Refused
home = os.path.expanduser("~")
def mark(n):
    return "touch %s/mark%d" % (home, n)
calls = [xylem.ShellFunction(mark(1), walltime=3600),
         xylem.MPIFunction(mark(2), ranks=4)]
forged = xylem.MPIFunction(mark(3), ranks=1)
forged.nodes = 3  # past the constructor's own check
calls.append(forged)
with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
    for fn in calls:
        try:
            print("ran", ex.submit(fn).result(60))
        except Refused as e:
            print("refused:", e)
    print("within:", ex.submit(xylem.ShellFunction("echo fine",
          walltime=30)).result(60).stdout.strip())
    print("marks:", sorted(f for f in os.listdir(home)
                           if f.startswith("mark")))
""", sock)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines() == [
            "refused: ShellFunction walltime=3600: must be from 1.0 to 60.0"
            " (the administrator's range for time_limit)",
            "refused: MPIFunction ranks=4: must be from 1 to 2 (the "
            "administrator's range for cores)",
            "refused: MPIFunction nodes=3: the endpoint runs an MPI call's "
            "ranks on one node (nodes=1)",
            "within: fine", "marks: []"], \
            r.stdout + _python_log(accounts, "xyepy_la")
        # Nothing of the refused calls was written down.
        logs = glob.glob(os.path.join(accounts["xyepy_la"].pw_dir, ".xylem",
                                      "endpoint", "python", "sessions",
                                      "*.log"))
        assert logs and not any(b"mark" in open(f, "rb").read()
                                for f in logs)
        assert not re.search(r"mark\d", _python_log(accounts, "xyepy_la"))


def test_caps_with_a_wrong_value_stop_the_endpoint(tree):
    """(And tls_keepalive, read beside them.)"""
    for line, want in (
            ("max_workers = 0", "max_workers wants a number from 1"),
            ("max_cores = lots", "max_cores wants a number from 1"),
            ("user xyepy_la = max_workers", "user xyepy_la wants "
             "'max_workers N, max_cores M'"),
            ("user xyepy_la = max_gpus 2", "user xyepy_la wants"),
            ("user xyepy_la = max_workers 2, max_workers 3",
             "user xyepy_la wants"),
            ("tls_keepalive = 0", "tls_keepalive wants a number from 1 to "
             "7200")):
        cfg = tree / "bad.conf"
        cfg.write_text("workers = 1\n" + line + "\n")
        os.chmod(cfg, 0o644)
        r = subprocess.run([str(tree / "build" / "src" / "cli" / "xylem"),
                            "endpoint", "--socket", str(tree / "bad.sock"),
                            "--config", str(cfg)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 1, (line, r.stderr)
        assert "bad.conf:2: " + want in r.stderr, (line, r.stderr)


HOLDER = """
import sys, time, xylem
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
print(ex.session, ex.submit(pow, 3, 2).result(60), flush=True)
time.sleep(600)
"""

TAKER = """
import sys, time, xylem
t0 = time.monotonic()
try:
    ex = xylem.Executor(endpoint="unix:" + sys.argv[1], session=sys.argv[2])
    print("attached %.1f" % (time.monotonic() - t0),
          [f.result(60) for f in ex.futures()])
    ex.shutdown()
except ValueError as e:
    print("refused:", e)
"""


def test_a_session_whose_client_does_not_answer_is_taken_over(accounts,
                                                              tree):
    with serving(accounts, tree, "workers = 1\n") as sock:
        path = tree / "holder.py"
        path.write_text(HOLDER)
        os.chmod(path, 0o644)
        holder = subprocess.Popen(
            ["runuser", "-u", "xyepy_la", "--", "env", "PYTHONPATH=%s" % (
                tree / "lib"), "XYLEM_BUILD_DIR=%s" % (tree / "build"),
             PYTHON, "-u", str(path), sock], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd="/")
        try:
            line = holder.stdout.readline().split()
            assert len(line) == 2 and line[1] == "9", line
            session = line[0]
            # Alive (it answers the server's ping): the session stays its.
            r = run_as("xyepy_la", tree, TAKER, sock, session)
            assert r.stdout.strip() == ("refused: session %s is attached "
                                        "to another client now" % session), \
                r.stdout + r.stderr
            # Stopped, its connection open: half-open. Taken over.
            pids = subprocess.check_output(
                ["pgrep", "-u", "xyepy_la", "-f", str(path)],
                text=True).split()
            for pid in pids:
                os.kill(int(pid), signal.SIGSTOP)
            r = run_as("xyepy_la", tree, TAKER, sock, session)
            m = re.fullmatch(r"attached ([0-9.]+) \[9\]", r.stdout.strip())
            assert m and float(m.group(1)) < 10, r.stdout + r.stderr
            assert "session %s: its client did not answer within 2 s: " \
                "taken over by a new client" % session in \
                _python_log(accounts, "xyepy_la")
        finally:
            holder.kill()
            subprocess.run(["pkill", "-KILL", "-u", "xyepy_la", "-f",
                            str(path)], check=False)
            holder.wait()
