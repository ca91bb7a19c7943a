"""The shared endpoint (docs/endpoint.md): real local accounts made by the
test, the real `xylem endpoint` started as root, each user's manager under
that user's uid. Every refusal is checked to have started nothing."""

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from accounts import kill_user, local_accounts  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"),
    reason="needs root and useradd to make the test's accounts")

USERS = ("xyept_a", "xyept_b", "xyept_c")  # c is not allowed by the config

TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo ran >> "$HOME_COUNT"; sleep "$SLOW"; id -u']
requirements:
  EnvVarRequirement:
    envDef:
      HOME_COUNT: $(inputs.count)
      SLOW: $(inputs.slow)
inputs:
  count: string
  slow:
    type: string
    default: "0"
outputs:
  out: stdout
stdout: id.txt
"""


@pytest.fixture(scope="module")
def accounts():
    with local_accounts(USERS) as made:
        yield made


@pytest.fixture
def place(xylem_bin):
    """A directory every account can enter, with a copy of the binary
    (the build tree may sit under root's 0700 home)."""
    d = tempfile.mkdtemp(prefix="xyep-")
    os.chmod(d, 0o755)
    exe = os.path.join(d, "xylem")
    shutil.copy(xylem_bin, exe)
    os.chmod(exe, 0o755)
    with open(os.path.join(d, "tool.cwl"), "w") as f:
        f.write(TOOL)
    os.chmod(os.path.join(d, "tool.cwl"), 0o644)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Endpoint:
    def __init__(self, place, config, user=None):
        self.place = place
        self.exe = os.path.join(place, "xylem")
        self.sock = os.path.join(place, "ep.sock")
        self.log = os.path.join(place, "ep.log")
        cmd = [self.exe, "endpoint", "--socket", self.sock]
        if config is not None:
            cfg = os.path.join(place, "endpoint.conf")
            with open(cfg, "w") as f:
                f.write(config)
            cmd += ["--config", cfg]
        if user:
            cmd = ["runuser", "-u", user, "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait_serving(self):
        wait_for(lambda: "serving" in self.text() or
                 self.proc.poll() is not None, 10, what="the endpoint")
        assert self.proc.poll() is None, self.text()

    def connect(self, user, wait=20):
        cmd = [self.exe, "endpoint", "connect", "--socket", self.sock,
               "--wait", str(wait)]
        if user != "root":
            cmd = ["runuser", "-u", user, "--"] + cmd
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=wait + 10)

    def env_of(self, user):
        r = self.connect(user)
        assert r.returncode == 0, r.stderr
        return dict(line.split("=", 1) for line in r.stdout.split())

    def run_tool(self, user, env, count, wait=True, slow=0):
        job = os.path.join(self.place, f"job-{user}.json")
        with open(job, "w") as f:
            f.write('{"count": "%s", "slow": "%d"}' % (count, slow))
        os.chmod(job, 0o644)
        home = pwd.getpwnam(user).pw_dir
        cmd = ["runuser", "-u", user, "--", self.exe, "cwl", "--manager",
               env["XYLEM_MANAGER"], "--secret-file",
               env["XYLEM_SECRET_FILE"], "--tls-ca", env["XYLEM_TLS_CA"],
               "--outdir", os.path.join(home, "out"),
               os.path.join(self.place, "tool.cwl"), job]
        if not wait:
            return subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    cwd="/")
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=60, cwd="/")

    def spawned(self):
        """The managers the spawner started that still run (a refused
        start's child, killed, is reaped within the spawner's 250 ms
        tick: it is waited out, not counted)."""
        spawner = subprocess.run(
            ["pgrep", "-u", "root", "-f", "xylem endpoint --socket " +
             re.escape(self.sock)], capture_output=True, text=True)

        def alive():
            ps = subprocess.run(["ps", "--ppid", spawner.stdout.strip(),
                                 "-o", "pid=,stat="], capture_output=True,
                                text=True)
            return [line.split()[0] for line in ps.stdout.splitlines()
                    if not line.split()[1].startswith("Z")]
        end = time.monotonic() + 5
        while alive() and time.monotonic() < end:
            time.sleep(0.05)
        return alive()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)


def _clean_homes(accounts):
    """What the tests leave in the accounts' homes, links included."""
    for u in USERS:
        for name in (".xylem", "out", "count"):
            path = os.path.join(accounts[u].pw_dir, name)
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def endpoint(accounts, place):
    _clean_homes(accounts)
    ep = Endpoint(place, "# the test's endpoint\n"
                  "users = xyept_a, xyept_b\nidle_exit = 3\nworkers = 1\n")
    ep.wait_serving()
    yield ep
    ep.stop()
    for u in USERS:
        kill_user(u)
        log = os.path.join(accounts[u].pw_dir, ".xylem", "endpoint",
                           "manager.log")
        if os.path.isfile(log):  # a sanitized build's findings land here
            assert "Sanitizer" not in open(log).read(), log
    _clean_homes(accounts)


def _pids(user, pattern):
    r = subprocess.run(["pgrep", "-u", user, "-f", pattern],
                       capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


def test_each_user_runs_as_themselves(endpoint, accounts):
    homes = {}
    for u in ("xyept_a", "xyept_b"):
        env = endpoint.env_of(u)
        count = os.path.join(accounts[u].pw_dir, "count")
        r = endpoint.run_tool(u, env, count)
        assert r.returncode == 0, r.stdout + r.stderr
        out = os.path.join(accounts[u].pw_dir, "out", "id.txt")
        assert open(out).read().strip() == str(accounts[u].pw_uid)
        homes[u] = env
        # The manager: the user's uid for good, a clean environment,
        # umask 077, no capabilities, no new privileges.
        (pid,) = _pids(u, "xylem manager")
        st = _status(pid)
        uid = str(accounts[u].pw_uid)
        assert st["Uid"].split() == [uid] * 4
        assert st["Umask"] == "0077"
        assert int(st["CapEff"], 16) == 0 and st["NoNewPrivs"] == "1"
        environ = open(f"/proc/{pid}/environ").read().split("\0")
        assert sorted(e.split("=")[0] for e in environ if e) == [
            "HOME", "LOGNAME", "PATH", "SHELL", "USER"]
        d = os.path.join(accounts[u].pw_dir, ".xylem", "endpoint")
        for p in (d, os.path.join(d, "journal")):
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o700
        for p in ("secret", "port", "log"):
            s = os.stat(os.path.join(d, "journal", p))
            assert stat.S_IMODE(s.st_mode) == 0o600
            assert s.st_uid == accounts[u].pw_uid
    # The front serves as nobody with no capability; root is kept by the
    # spawner alone, which holds no descriptor but its socketpair.
    front = int(subprocess.check_output(
        ["pgrep", "-u", "nobody", "-f", "xylem endpoint --socket"]))
    st = _status(front)
    assert st["Uid"].split() == [str(pwd.getpwnam("nobody").pw_uid)] * 4
    assert int(st["CapEff"], 16) == 0
    (spawner,) = _pids("root", "xylem endpoint --socket " +
                       re.escape(endpoint.sock))
    fds = {f: os.readlink(f"/proc/{spawner}/fd/{f}")
           for f in os.listdir(f"/proc/{spawner}/fd")}
    sockets = [v for k, v in fds.items() if int(k) > 2]
    assert len(sockets) == 1 and sockets[0].startswith("socket:"), fds
    # A cannot read B's secret, nor reach B's manager with its own.
    a, b = homes["xyept_a"], homes["xyept_b"]
    r = subprocess.run(["runuser", "-u", "xyept_a", "--", "cat",
                        b["XYLEM_SECRET_FILE"]], capture_output=True)
    assert r.returncode != 0
    r = subprocess.run(["runuser", "-u", "xyept_a", "--", endpoint.exe,
                        "status", b["XYLEM_MANAGER"], "--secret-file",
                        a["XYLEM_SECRET_FILE"], "--tls-ca",
                        a["XYLEM_TLS_CA"]], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r.stdout


@pytest.mark.parametrize("who,why", [
    ("root", "root may not use the endpoint"),
    ("daemon", "is a system account"),
    ("xyept_c", "is not among the endpoint's users"),
])
def test_refused_accounts_start_nothing(endpoint, accounts, who, why):
    r = endpoint.connect(who)
    assert r.returncode == 1
    assert why in r.stderr, r.stderr
    assert why in endpoint.text()
    assert not endpoint.spawned()
    if who in accounts:
        assert not os.path.exists(
            os.path.join(accounts[who].pw_dir, ".xylem"))


def test_a_garbled_request_is_refused(endpoint, accounts):
    script = ("import socket,sys; s=socket.socket(socket.AF_UNIX);"
              "s.connect(sys.argv[1]); s.sendall(b'manager please\\n');"
              "print(s.recv(200).decode())")
    r = subprocess.run(["runuser", "-u", "xyept_a", "--", "python3", "-c",
                        script, endpoint.sock], capture_output=True,
                       text=True, timeout=20)
    assert r.stdout.startswith("error unknown request"), r.stdout + r.stderr
    assert not _pids("xyept_a", "xylem manager")


def test_a_planted_symlink_is_not_followed(endpoint, accounts, place):
    # A points ~/.xylem at a directory of root's, 0700: a manager that
    # touched it as root would write there; as A it cannot even look.
    home = accounts["xyept_a"].pw_dir
    target = os.path.join(place, "roots")
    os.mkdir(target, 0o700)
    subprocess.run(["runuser", "-u", "xyept_a", "--", "ln", "-s", target,
                    f"{home}/.xylem"], check=True)
    r = endpoint.connect("xyept_a")
    assert r.returncode == 1
    assert "cannot make ~/.xylem/endpoint" in r.stderr, r.stderr
    assert os.listdir(target) == []
    assert not endpoint.spawned()
    os.unlink(f"{home}/.xylem")
    # And a link as ~/.xylem/endpoint itself, to a directory A may
    # write: not the user's own directory, refused.
    other = os.path.join(place, "elsewhere")
    os.mkdir(other)
    os.chmod(other, 0o777)
    subprocess.run(["runuser", "-u", "xyept_a", "--", "sh", "-c",
                    f"mkdir -p {home}/.xylem && ln -s {other} "
                    f"{home}/.xylem/endpoint"], check=True)
    r = endpoint.connect("xyept_a")
    assert r.returncode == 1
    assert "is not the user's directory" in r.stderr, r.stderr
    assert os.listdir(other) == []


def test_a_fifo_as_the_log_holds_up_nobody(endpoint, accounts):
    # A plants a FIFO where its manager's log goes: its own start fails
    # at once (opened without waiting for a reader: ENXIO) instead of
    # hanging the spawner, and B is served.
    home = accounts["xyept_a"].pw_dir
    subprocess.run(["runuser", "-u", "xyept_a", "--", "sh", "-c",
                    f"mkdir -p -m 700 {home}/.xylem/endpoint && mkfifo "
                    f"{home}/.xylem/endpoint/manager.log"], check=True)
    t = time.monotonic()
    r = endpoint.connect("xyept_a")
    assert r.returncode == 1
    assert "cannot open the log" in r.stderr, r.stderr
    assert endpoint.env_of("xyept_b")["XYLEM_MANAGER"]
    assert time.monotonic() - t < 5


def test_idle_manager_exits_and_comes_back_from_its_journal(endpoint,
                                                              accounts):
    u = "xyept_a"
    count = os.path.join(accounts[u].pw_dir, "count")
    env = endpoint.env_of(u)
    r = endpoint.run_tool(u, env, count)
    assert r.returncode == 0, r.stdout + r.stderr
    (pid,) = _pids(u, "xylem manager")
    # idle_exit is 3 s: no task and no client, it stops.
    wait_for(lambda: not _pids(u, "xylem manager"), 20,
             what="the idle manager to exit")
    log = open(os.path.join(accounts[u].pw_dir, ".xylem", "endpoint",
                            "manager.log")).read()
    assert "idle for 3 s, stopping" in log
    # Asked again, the endpoint starts it again, on the same journal: the
    # same task is answered from it and does not run a second time.
    env2 = endpoint.env_of(u)
    (pid2,) = _pids(u, "xylem manager")
    # Same secret and CA; the port is any free one (an idle manager
    # forgets its port, so that no client calls a dead one).
    assert pid2 != pid
    assert env2["XYLEM_SECRET_FILE"] == env["XYLEM_SECRET_FILE"]
    assert env2["XYLEM_TLS_CA"] == env["XYLEM_TLS_CA"]
    r = endpoint.run_tool(u, env2, count)
    assert r.returncode == 0, r.stdout + r.stderr
    assert open(count).read() == "ran\n"


def test_config_must_be_roots_and_well_formed(accounts, place):
    cfg = os.path.join(place, "endpoint.conf")
    cmd = [os.path.join(place, "xylem"), "endpoint", "--socket",
           os.path.join(place, "x.sock"), "--config", cfg]
    with open(cfg, "w") as f:
        f.write("users = xyept_a\nworkerz = 2\n")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "endpoint.conf:2: unknown setting 'workerz'" in p.stderr
    # Who may start a manager is root's to say, and root's alone.
    with open(cfg, "w") as f:
        f.write("users = xyept_a\n")
    os.chown(cfg, accounts["xyept_a"].pw_uid, -1)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "must belong to root" in p.stderr
    assert not os.path.exists(os.path.join(place, "x.sock"))


@pytest.mark.parametrize("line,why", [
    ("max_queued = lots", "max_queued wants a number from 1 to 1000000000,"
     " not 'lots'"),
    ("max_queued = 0", "max_queued wants a number from 1"),
    ("max_result_bytes = 12Q", "max_result_bytes wants a size from 1K"),
    ("retention = -5", "retention wants a time from 1 s"),
    ("option walltime = int 1..2", "option 'walltime' is not one users can"
     " set"),
    ("option cores = int 5..1", "option cores wants 'int LO..HI', 'float "
     "LO..HI' or 'enum A, B, ...', not 'int 5..1'"),
    ("option cores = text", "option cores wants 'int LO..HI'"),
    ("option cores = int 1.5..2", "option cores wants 'int LO..HI'"),
    ("option disk = float 1..x", "option disk wants"),
    ("option tag = enum ,", "option tag wants"),
    ("retension = 5", "unknown setting 'retension'"),
    ("pool gpu = pbs 4 2", "pool gpu wants 'PROVIDER CORES MAX_WORKERS"),
    ("pool gpu = local 4", "pool gpu wants"),
    ("pool gpu = slurm 4 0", "pool gpu wants"),
    # Numbers the session server's int() and float() would not take.
    ("pool gpu = slurm 4 10abc", "pool gpu wants"),
    ("pool gpu = slurm 4 10.5", "pool gpu wants"),
    ("option disk = float 0x1p0..2", "option disk wants"),
    ("option disk = float 1..inf", "option disk wants"),
    ("pool g/x = local 4 1", "a pool's name is 1 to 32 letters"),
])
def test_limits_with_a_wrong_type_stop_the_endpoint(accounts, place, line,
                                                     why):
    # Limits on users' Python sessions: a wrong value or an unknown key
    # stops the endpoint, naming the file and the line.
    cfg = os.path.join(place, "endpoint.conf")
    with open(cfg, "w") as f:
        f.write("users = xyept_a\nretention = 1d\nmax_result_bytes = 2G\n"
                "option cores = int 1..4\noption time_limit = float 1..60"
                "\n%s\n" % line)
    p = subprocess.run([os.path.join(place, "xylem"), "endpoint",
                        "--socket", os.path.join(place, "x.sock"),
                        "--config", cfg], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1, p.stderr
    assert "endpoint.conf:6: " + why in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(place, "x.sock"))


def test_an_endpoint_of_one_user_serves_that_user_alone(accounts, place):
    os.chmod(place, 0o777)  # A makes its socket here
    ep = Endpoint(place, None, user="xyept_a")
    try:
        ep.wait_serving()
        env = ep.env_of("xyept_a")
        assert env["XYLEM_SECRET_FILE"].startswith(
            accounts["xyept_a"].pw_dir)
        r = ep.connect("xyept_b")
        assert r.returncode == 1
        assert "serves only uid %d" % accounts["xyept_a"].pw_uid in r.stderr
        assert not _pids("xyept_b", "xylem manager")
    finally:
        ep.stop()
        kill_user("xyept_a")
        shutil.rmtree(os.path.join(accounts["xyept_a"].pw_dir, ".xylem"),
                      ignore_errors=True)


def test_a_flood_from_one_user_leaves_the_others_served(endpoint, accounts):
    # A holds 20 connections open without a request: 8 wait their 2 s, the
    # rest are refused at once; B is answered meanwhile, at once.
    script = ("import socket,sys,time\n"
              "ss=[]\n"
              "for i in range(20):\n"
              "  s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
              "  ss.append(s)\n"
              "time.sleep(0.3)\n"
              "print('ready', flush=True)\n"
              "refused=0\n"
              "for s in ss:\n"
              "  s.settimeout(5); d=s.recv(200)\n"
              "  refused+=d.startswith(b'error too many requests')\n"
              "print('refused', refused, flush=True)\n")
    a = subprocess.Popen(["runuser", "-u", "xyept_a", "--", "python3", "-u",
                          "-c", script, endpoint.sock],
                         stdout=subprocess.PIPE, text=True)
    assert a.stdout.readline().strip() == "ready"
    t = time.monotonic()
    env = endpoint.env_of("xyept_b")
    assert time.monotonic() - t < 1.5
    assert env["XYLEM_MANAGER"].startswith("127.0.0.1:")
    out, _ = a.communicate(timeout=20)
    assert out.strip() == "refused 12"
    assert not _pids("xyept_a", "xylem manager")


def test_a_killed_manager_comes_back_and_its_client_finishes(endpoint,
                                                             accounts):
    u = "xyept_a"
    count = os.path.join(accounts[u].pw_dir, "count")
    env = endpoint.env_of(u)
    client = endpoint.run_tool(u, env, count, wait=False, slow=2)
    wait_for(lambda: os.path.exists(count), 20, what="the task to start")
    (pid,) = _pids(u, "xylem manager")
    os.kill(pid, signal.SIGKILL)
    # The spawner sees it die and starts it again, on its journal and
    # its port: the client, reconnecting, finds it there.
    wait_for(lambda: "manager died (signal 9); starting it again"
             in endpoint.text(), 10, what="the manager to be restarted")
    (pid2,) = wait_for(lambda: _pids(u, "xylem manager"), 10,
                       what="the new manager")
    assert pid2 != pid
    out, err = client.communicate(timeout=90)
    assert client.returncode == 0, out + err
    out = os.path.join(accounts[u].pw_dir, "out", "id.txt")
    assert open(out).read().strip() == str(accounts[u].pw_uid)
    assert endpoint.env_of(u)["XYLEM_MANAGER"] == env["XYLEM_MANAGER"]
