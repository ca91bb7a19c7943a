"""Python calls through a shared endpoint (docs/endpoint.md): a real
`xylem endpoint` started as root, real accounts made by the test, each
user's session server under that user's uid, and clients run as those
users. A client that leaves and a session server killed with SIGKILL
lose no call."""

import contextlib
import glob
import os
import random
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

USERS = ("xyepy_a", "xyepy_b")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def accounts():
    with local_accounts(USERS) as made:
        yield made


@pytest.fixture(scope="module")
def tree():
    d = world_tree(os.environ["XYLEM_BUILD_DIR"], os.environ.get("XYLEM_BIN"),
                   prefix="xyepy-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


PYTHON = os.path.realpath(os.path.join(sys.base_prefix, "bin", "python3"))


@contextlib.contextmanager
def serving(accounts, tree, extra=""):
    """A real endpoint as root, with the base configuration and extra
    lines; at the end, the users' processes killed and their state
    removed."""
    sock = tree / "ep.sock"
    cfg = tree / "endpoint.conf"
    cfg.write_text(
        "users = %s\nidle_exit = 30\nworkers = 1\npython = %s\n"
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
        for u in USERS:
            subprocess.run(["pkill", "-KILL", "-u", u], check=False)
            for log in glob.glob(os.path.join(accounts[u].pw_dir, ".xylem",
                                              "endpoint", "*.log")):
                assert "Sanitizer" not in open(log).read(), log
            shutil.rmtree(os.path.join(accounts[u].pw_dir, ".xylem"),
                          ignore_errors=True)


@pytest.fixture
def endpoint(accounts, tree):
    with serving(accounts, tree) as sock:
        yield sock


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


# ------------------------------------------------- exactly once, limits

EFFECT = """
import os, random, sys, time, xylem

def effect(path, i, nap):
    # The side effect: one line per run, appended in one write.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, b"%d\\n" % i)
    os.close(fd)
    time.sleep(nap)
    return i * i
"""


def _home(accounts, user):
    return Path(accounts[user].pw_dir)


def _python_log(accounts, user):
    p = _home(accounts, user) / ".xylem" / "endpoint" / "python.log"
    return p.read_text() if p.exists() else ""


def _wait_server(user, other_than=None, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = [p for p in _session_servers(user) if p != other_than]
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no session server of %s" % user)


def _kill_randomly(user, kills, seed):
    """SIGKILLs user's session server kills times, each at a random point
    of the new one's life (after it started again)."""
    rng = random.Random(seed)
    pid = _wait_server(user)
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 1.5))
        os.kill(pid, signal.SIGKILL)
        pid = _wait_server(user, other_than=pid)


def test_a_killed_session_server_runs_each_call_exactly_once(
        accounts, tree):
    # Calls with a side effect, submitted in bursts while the session
    # server is killed with SIGKILL four times at random points: every
    # call gives exactly one result, and its side effect happened once
    # (the calls that ran while the server was dead are adopted from the
    # worker that kept them, or answered from the server's journal).
    effects = _home(accounts, "xyepy_a") / "effects"
    n = 40
    with serving(accounts, tree) as sock:
        client = run_as("xyepy_a", tree, EFFECT + """
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
futs = []
for burst in range(4):
    futs += [ex.submit(effect, sys.argv[2], i, 0.1 + i % 4 * 0.1)
             for i in range(burst * 10, burst * 10 + 10)]
    # The same call again: a call of its own, which runs too.
    futs.append(ex.submit(effect, sys.argv[2], burst * 10, 0.1))
    time.sleep(0.4)
ex.flush()
print([f.result(timeout=300) for f in futs])
print(len(ex.futures()))
ex.shutdown()
""", sock, effects, wait=False)
        _kill_randomly("xyepy_a", 4, seed=int(time.time()))
        out, err = client.communicate(timeout=8 * TIMEOUT)
        assert client.returncode == 0, out + err
        results, count = out.splitlines()
        want = []
        for burst in range(4):
            want += [i * i for i in range(burst * 10, burst * 10 + 10)]
            want.append((burst * 10) ** 2)
        assert results == str(want)
        assert count == str(n + 4)
        ran = effects.read_text().split()
        assert sorted(map(int, ran)) == sorted(
            list(range(n)) + [0, 10, 20, 30]), \
            (sorted(map(int, ran)), _python_log(accounts, "xyepy_a"))
        log = (tree / "ep.log").read_text()
        assert log.count("session server died (signal 9)") == 4


LIMITS = """cores_per_worker = 2
max_queued = 8
max_result_bytes = 64K
option cores = int 1..2
option time_limit = float 0.5..60
option tag = enum red, blue
"""


def test_options_outside_the_schema_are_refused(accounts, tree):
    with serving(accounts, tree, LIMITS) as sock:
        r = run_as("xyepy_a", tree, """
import sys, xylem
from xylem.endpoint import Refused
def f(x):
    return x + 1
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
for opts in ({"cores": 3}, {"cores": True}, {"memory": 10},
             {"tag": "green"}, {"time_limit": 0.1}, {"cores": "2"}):
    try:
        print("ran", ex.options(**opts).submit(f, 1).result(60))
    except Refused as e:
        print("refused:", e)
print("ok", ex.options(cores=2, tag="red", time_limit=30).submit(
    f, 41).result(60))
print(ex.session)
ex.shutdown(wait=False)
""", sock)
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[:6] == [
            "refused: option cores=3: must be from 1 to 2",
            "refused: option cores=True: must be an int",
            "refused: option 'memory' is not one the administrator lets "
            "you set (you may set: cores, tag, time_limit)",
            "refused: option tag='green': must be one of red, blue",
            "refused: option time_limit=0.1: must be from 0.5 to 60.0",
            "refused: option cores='2': must be an int"], lines
        assert lines[6] == "ok 42"
        # The refused calls changed nothing: the session holds one call.
        again = run_as("xyepy_a", tree, """
import sys, xylem
ex = xylem.Executor(endpoint="unix:" + sys.argv[1], session=sys.argv[2])
print([f.result(60) for f in ex.futures()])
ex.shutdown()
""", sock, lines[7])
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.strip() == "[42]"


def test_held_results_over_the_limit_refuse_work_until_acknowledged(
        accounts, tree):
    with serving(accounts, tree, LIMITS) as sock:
        r = run_as("xyepy_a", tree, """
import sys, xylem
from xylem.endpoint import Refused
def big(n):
    return b"x" * n
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
print(len(ex.submit(big, 100000).result(60)))
try:
    ex.submit(big, 10).result(60)
    print("ran")
except Refused as e:
    print("refused:", e)
ex.acknowledge()
print(len(ex.submit(big, 10).result(60)))
ex.shutdown()
""", sock)
        assert r.returncode == 0, r.stdout + r.stderr
        first, second, third = r.stdout.splitlines()
        assert first == "100000"
        assert second.startswith("refused: your sessions hold ") and \
            "max_result_bytes of 65536" in second, second
        assert third == "10"


def test_a_flood_is_throttled_and_another_user_is_served(accounts, tree):
    # A submits 300 calls with max_queued = 8: its session server takes
    # them 8 at a time (A's flush waits); B, meanwhile, gets its result
    # at once; A gets all of them in the end.
    with serving(accounts, tree, LIMITS) as sock:
        flood = run_as("xyepy_a", tree, """
import sys, time, xylem
def nap(i):
    time.sleep(0.02)
    return i
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
futs = [ex.submit(nap, i) for i in range(300)]
time.sleep(1.0)
print("waiting", len(ex._unaccepted), flush=True)
ex.flush()
print([f.result(120) for f in futs] == list(range(300)))
ex.shutdown()
""", sock, wait=False)
        line = flood.stdout.readline().split()
        assert line[0] == "waiting" and int(line[1]) > 100, line
        t0 = time.monotonic()
        b = run_as("xyepy_b", tree, """
import sys, xylem
with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
    print(ex.submit(pow, 2, 10).result(60))
""", sock)
        served = time.monotonic() - t0
        assert b.returncode == 0 and b.stdout.strip() == "1024", \
            b.stdout + b.stderr
        out, err = flood.communicate(timeout=8 * TIMEOUT)
        assert flood.returncode == 0 and out.strip() == "True", out + err
        assert "throttled: 8 calls queued (max_queued 8)" in \
            _python_log(accounts, "xyepy_a")
        assert served < 15, served


def test_results_past_the_retention_are_dropped_and_said(accounts, tree):
    with serving(accounts, tree, "retention = 2\n") as sock:
        first = run_as("xyepy_a", tree, """
import sys, xylem
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
for i in range(3):
    ex.submit(abs, -i)
ex.shutdown(wait=False)
print(ex.session)
""", sock)
        assert first.returncode == 0, first.stdout + first.stderr
        session = first.stdout.strip()
        end = time.monotonic() + TIMEOUT
        while "dropped 3 results" not in _python_log(accounts, "xyepy_a"):
            assert time.monotonic() < end, _python_log(accounts, "xyepy_a")
            time.sleep(0.2)
        assert ("session %s: dropped 3 results unacknowledged for more "
                "than 2 s (retention): calls 1, 2, 3" % session) in \
            _python_log(accounts, "xyepy_a")
        again = run_as("xyepy_a", tree, """
import sys, xylem
ex = xylem.Executor(endpoint="unix:" + sys.argv[1], session=sys.argv[2])
for f in ex.futures():
    print(type(f.exception(60)).__name__)
n = ex.submit(abs, -7).result(60)
print(n)
ex.shutdown()
""", sock, session)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.split() == ["ResultDropped"] * 3 + ["7"]


def _log_size(accounts, user, session):
    return (_home(accounts, user) / ".xylem" / "endpoint" / "python" /
            "sessions" / (session + ".log")).stat().st_size


def test_the_session_log_stays_bounded(accounts, tree):
    extra = "environment = XYLEM_ENDPOINT_COMPACT_BYTES=20000\n"
    with serving(accounts, tree, extra) as sock:
        r = run_as("xyepy_a", tree, """
import sys, xylem
pad = "p" * 1000
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
for b in range(12):
    futs = [ex.submit(len, pad + str(i)) for i in range(30)]
    assert [f.result(60) for f in futs] == [1000 + len(str(i))
                                             for i in range(30)]
    ex.acknowledge()
ex.flush()
print(ex.session)
ex.shutdown()
""", sock)
        assert r.returncode == 0, r.stdout + r.stderr
        session = r.stdout.strip()
        log = _python_log(accounts, "xyepy_a")
        assert "session %s: log compacted" % session in log, log
        # 360 calls of over 1,000 bytes each were written; the log holds
        # at most what was live at its last compaction and one batch.
        assert _log_size(accounts, "xyepy_a", session) < 2 * 20000 + 40000


@pytest.mark.parametrize("point", ["compact-before-sync",
                                   "compact-before-rename",
                                   "compact-after-rename"])
def test_a_kill_mid_compaction_loses_nothing(accounts, tree, point):
    effects = _home(accounts, "xyepy_a") / "effects"
    if effects.exists():
        effects.unlink()
    extra = ("environment = XYLEM_ENDPOINT_COMPACT_BYTES=8000\n"
             "environment = XYLEM_ENDPOINT_CRASH=%s\n" % point)
    with serving(accounts, tree, extra) as sock:
        r = run_as("xyepy_a", tree, EFFECT + """
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
out = []
for b in range(6):
    futs = [ex.submit(effect, sys.argv[2], b * 20 + i, 0.0)
            for i in range(20)]
    out += [f.result(120) for f in futs]
    # Submitted before the acknowledgement that compacts: still running
    # when the server dies there.
    slow = [ex.submit(effect, sys.argv[2], 1000 + b * 5 + i, 0.3)
            for i in range(5)]
    ex.flush()
    ex.acknowledge()
    out += [f.result(120) for f in slow]
print(out == [x * x for b in range(6) for x in
              list(range(b * 20, b * 20 + 20)) +
              list(range(1000 + b * 5, 1005 + b * 5))])
ex.shutdown()
""", sock, effects)
        assert r.returncode == 0 and r.stdout.strip() == "True", \
            r.stdout + r.stderr
        assert (tree / "ep.log").read_text().count(
            "session server died (signal 9)") == 1
        ran = sorted(map(int, effects.read_text().split()))
        assert ran == sorted(list(range(120)) + list(range(1000, 1030)))


def test_map_in_chunks_and_mpi_through_the_endpoint(accounts, tree):
    if not shutil.which("mpirun"):
        pytest.skip("mpirun (openmpi-bin) is not installed")
    with serving(accounts, tree, "cores_per_worker = 2\n") as sock:
        r = run_as("xyepy_b", tree, """
import sys, xylem
def sq(x):
    if x == 77:
        raise ValueError("seventy-seven")
    return x * x
with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
    print("attached", file=sys.stderr, flush=True)
    print(list(ex.map(sq, range(50), chunksize=8)) ==
          [x * x for x in range(50)], flush=True)
    print(len(ex.futures()))
    got = []
    try:
        for v in ex.map(sq, range(100)):
            got.append(v)
    except ValueError as e:
        print("raised", e, len(got))
    mf = xylem.MPIFunction(
        "sh -c 'echo rank=$OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE"
        " uid=$(id -u)'", ranks=2)
    print("mpi", file=sys.stderr, flush=True)
    res = ex.submit(mf).result(120)
    print(res.returncode, sorted(res.stdout.splitlines()))
""", sock, wait=False)
        try:
            out, err = r.communicate(timeout=4 * TIMEOUT)
        except subprocess.TimeoutExpired:
            subprocess.run(["pkill", "-KILL", "-u", "xyepy_b", "-f",
                            "client-"], check=False)
            out, err = r.communicate(timeout=30)
            pytest.fail("hung: %s %s %s" % (out, err, _python_log(
                accounts, "xyepy_b")))
        r.stdout, r.stderr = out, err
        assert r.returncode == 0, r.stdout + r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "True"
        assert lines[1] == "7"  # 50 calls in chunks of 8
        assert lines[2] == "raised seventy-seven 77"
        uid = accounts["xyepy_b"].pw_uid
        assert lines[3] == "0 %s" % [
            "rank=0 of 2 uid=%d" % uid, "rank=1 of 2 uid=%d" % uid], lines


def test_a_user_asks_for_the_pools_offered_to_them(accounts, tree):
    extra = ("option cores = int 1..2\n"
             "pool big = local 2 1\n"
             "pool bs = local 1 1 xyepy_b\n")
    with serving(accounts, tree, extra) as sock:
        r = run_as("xyepy_a", tree, """
import sys, xylem
def f(x):
    return x * 2
for pools in (["bs"], ["nope"], "big", ["big", "bs"]):
    try:
        xylem.Executor(endpoint="unix:" + sys.argv[1], pools=pools)
        print("attached")
    except ValueError as e:
        print("refused:", e)
# Its own server's one-core worker cannot run a two-core call ...
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
try:
    ex.options(cores=2).submit(f, 1).result(60)
except ValueError as e:
    print("no pool:", "asks for 2 cores" in str(e))
ex.shutdown()
# ... and the pool offered to everyone can.
with xylem.Executor(endpoint="unix:" + sys.argv[1], pools=["big"]) as ex:
    print("big:", ex.options(cores=2).submit(f, 21).result(120))
""", sock)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.splitlines() == [
            "refused: pool 'bs' is not one the administrator lets you ask "
            "for",
            "refused: no pool 'nope' here (the administrator offers: big, "
            "bs)",
            "refused: pools= wants a list of pool names",
            "refused: pool 'bs' is not one the administrator lets you ask "
            "for",
            "no pool: True",
            "big: 42"], r.stdout + _python_log(accounts, "xyepy_a")
        assert "pool big (local, 2 cores, at most 1 workers) added" in \
            _python_log(accounts, "xyepy_a")
        assert "pool bs" not in _python_log(accounts, "xyepy_a")


def test_a_call_running_when_its_server_is_killed_is_adopted(accounts,
                                                             tree):
    # The server dies while the call runs on its worker: the restarted
    # server takes the call's result from that worker, which kept it;
    # the call started once.
    effects = _home(accounts, "xyepy_a") / "adopted"
    with serving(accounts, tree) as sock:
        client = run_as("xyepy_a", tree, EFFECT + """
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
f = ex.submit(effect, sys.argv[2], 5, 3.0)
print(f.result(120))
ex.shutdown()
""", sock, effects, wait=False)
        end = time.monotonic() + TIMEOUT
        while not effects.exists():
            assert time.monotonic() < end and client.poll() is None
            time.sleep(0.02)
        os.kill(_wait_server("xyepy_a"), signal.SIGKILL)
        out, err = client.communicate(timeout=4 * TIMEOUT)
        assert client.returncode == 0 and out.strip() == "25", out + err
        assert effects.read_text() == "5\n"


def _log_records(path):
    """The records of a session log (frames: a 4-byte length, a pickle)."""
    import pickle
    import struct
    data, out, at = path.read_bytes(), [], 0
    while at + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, at)
        out.append(pickle.loads(data[at + 4:at + 4 + n]))
        at += 4 + n
    return out


def test_a_server_killed_while_a_group_of_calls_runs_runs_each_once(
        accounts, tree):
    # A burst of calls that arrive together runs as groups, one task
    # each, recorded in the session log before they are submitted. The
    # server is killed while a group is half run on its worker: the
    # restarted server submits the same group again (the same task to
    # its journal), which is adopted from the worker; every call gives
    # one result and ran once.
    effects = _home(accounts, "xyepy_a") / "grouped"
    n = 24
    with serving(accounts, tree) as sock:
        client = run_as("xyepy_a", tree, EFFECT + """
ex = xylem.Executor(endpoint="unix:" + sys.argv[1])
futs = [ex.submit(effect, sys.argv[2], i, 0.15) for i in range(%d)]
ex.flush()
print(ex.session, flush=True)
print([f.result(timeout=300) for f in futs])
ex.shutdown(wait=False)
""" % n, sock, effects, wait=False)
        session = client.stdout.readline().strip()
        end = time.monotonic() + 2 * TIMEOUT

        def runs():
            return len(effects.read_text().split()) if effects.exists() \
                else 0
        # Killed in the second group (calls 9 to 16), with two of its
        # calls run: not the first task of its function either (whose
        # pickle could travel otherwise after a restart).
        while runs() < 10:
            assert time.monotonic() < end and client.poll() is None
            time.sleep(0.01)
        os.kill(_wait_server("xyepy_a"), signal.SIGKILL)
        ran_before = runs()
        out, err = client.communicate(timeout=8 * TIMEOUT)
        assert client.returncode == 0, out + err
        assert out.strip() == str([i * i for i in range(n)])
        ran = sorted(map(int, effects.read_text().split()))
        assert ran == list(range(n)), (ran, _python_log(accounts,
                                                         "xyepy_a"))
        assert ran_before < n  # killed before the calls were all run
        log = _home(accounts, "xyepy_a") / ".xylem" / "endpoint" / \
            "python" / "sessions" / (session + ".log")
        recs = _log_records(log)
        groups = [r[1:] for r in recs if r[0] == "group"]
        # Grouped (up to 8 calls of a function not measured yet), each
        # group recorded after its calls' submit records.
        assert groups and all(1 < c <= 8 for _, c in groups), groups
        for k, r in enumerate(recs):
            if r[0] == "group":
                before = {q[1] for q in recs[:k] if q[0] == "submit"}
                assert before >= set(range(r[1], r[1] + r[2]))
        assert (tree / "ep.log").read_text().count(
            "session server died (signal 9)") == 1


def test_a_group_whose_results_pass_the_cap_sends_the_rest_again(
        accounts, tree):
    # A group stops running its calls once their results pass 1 MiB
    # (its reply is one message); the calls it left become a group of
    # their own, recorded before it is submitted: every call runs once
    # and gives its result.
    effects = _home(accounts, "xyepy_b") / "big"
    with serving(accounts, tree) as sock:
        r = run_as("xyepy_b", tree, EFFECT + """
def big(path, i):
    effect(path, i, 0.0)
    return bytes([i]) * 300000
with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
    futs = [ex.submit(big, sys.argv[2], i) for i in range(8)]
    print(all(f.result(120) == bytes([i]) * 300000
              for i, f in enumerate(futs)), flush=True)
    time.sleep(0.2)
    # The log copied before the acknowledgement of shutdown compacts it.
    log = os.path.expanduser("~/.xylem/endpoint/python/sessions/%s.log"
                             % ex.session)
    open(sys.argv[3], "wb").write(open(log, "rb").read())
""", sock, effects, _home(accounts, "xyepy_b") / "log.copy")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == "True"
        log = _home(accounts, "xyepy_b") / "log.copy"
        groups = [x[1:] for x in _log_records(log) if x[0] == "group"]
        # 8 calls, a group of them; it ran 4 (1.2 MB), then a group of
        # the 4 left.
        assert groups == [(1, 8), (5, 4)], groups
        assert sorted(map(int, effects.read_text().split())) == \
            list(range(8))


def _fd_targets(pid):
    """What each of a process's open descriptors names."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return sorted(out)


def test_many_sessions_keep_no_descriptor_each(endpoint, accounts, tree):
    """Sixty clients, one session each, one after the other: the session
    server's open descriptors stay about where they were (a server that
    kept each session's log open ran out of them after about a thousand
    clients, and every restart reopened them all)."""
    script = """
        import sys, xylem
        for _ in range(int(sys.argv[2])):
            with xylem.Executor(endpoint="unix:" + sys.argv[1]) as ex:
                assert ex.submit(abs, -3).result(60) == 3
    """
    r = run_as("xyepy_a", tree, script, endpoint, 2)
    assert r.returncode == 0, r.stdout + r.stderr
    (pid,) = _session_servers("xyepy_a")
    before = len(_fd_targets(pid))
    r = run_as("xyepy_a", tree, script, endpoint, 60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _session_servers("xyepy_a") == [pid]
    # A client's hang-up reaches the server after the client has gone: its
    # session's socket and log close a moment later (CI counted 62 at once).
    after = _fd_targets(pid)
    end = time.monotonic() + TIMEOUT
    while len(after) >= before + 20 and time.monotonic() < end:
        time.sleep(0.1)
        after = _fd_targets(pid)
    assert len(after) < before + 20, (before, after)
