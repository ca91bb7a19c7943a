"""A cluster of network namespaces on one machine, for Xylem's multi-node
tests and benchmarks (docs/netns.md).

    with Cluster(4, rate="200mbit") as c:
        mgr, port = c.start_manager("wf.json", secret_file)
        for i in range(4):
            c.start_worker(i, secret_file, port=port)
        mgr.wait(600)

Layout: one namespace per host ("manager", "w0", "w1", ...), each with `lo`
and one veth end named eth0 holding an address in a private /24
(10.213.X.0/24, X picked free; the manager is .1, worker i is .(10+i)).
The other veth ends ("v-<host>") are ports of a bridge (br0) in a namespace
of its own, "<prefix>-br", which has no address at all. Nothing is added to
the root namespace, and no namespace of the cluster has a route beyond its
/24: a packet to any other address fails at once with ENETUNREACH, so all
traffic stays on the cluster's veths and bridge.

Every link is capped with tbf at `rate`, in both directions: the host's
eth0 egress (its upload) and the bridge-side v-<host> egress (its
download).

Everything is removed when the `with` block ends, by return or by any
exception (KeyboardInterrupt included; SIGTERM and SIGHUP are turned into
SystemExit while the block runs). A run that was killed outright leaves its
namespaces behind; `cleanup_stale()` (or `python3 cluster.py cleanup`)
removes those whose owner process is gone. The owner's pid and what it made
are kept in /run/xylem-netns/<prefix>.json.

Python standard library only; needs root and iproute2 (`ip`, `tc`).
"""

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# One test CA for the managers and workers of a session (tests/tls_ca.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tls_ca  # noqa: E402

tls_ca.setup()

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = Path("/run/xylem-netns")
NET_BASE = "10.213"     # subnets are NET_BASE.X.0/24
MAX_WORKERS = 244       # .10 to .254 of a subnet
IFACE = "eth0"          # a host's interface, inside its namespace
BRIDGE = "br0"
MANAGER = "manager"
TBF_LATENCY = "50ms"    # how long a packet may wait in a tbf queue
ETH_HEADER = 14         # what tbf counts of a frame beyond its IP packet
TCP_IP_HEADERS = 52     # IPv4, TCP and its timestamp option
MTU_MIN, MTU_MAX = 576, 65535   # what a link's MTU may be here


class ClusterError(Exception):
    """A command that builds or drives the cluster failed."""


class Unavailable(ClusterError):
    """This machine cannot make namespaces (not root, no iproute2...)."""


# ---------------------------------------------------------------- helpers

def sh(argv, check=True, timeout=30):
    """Runs a command (no shell), returns its stdout; raises ClusterError
    with its stderr if it fails and check is true."""
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClusterError(f"{' '.join(argv)}: {e}") from None
    if check and r.returncode != 0:
        raise ClusterError(f"{' '.join(argv)}: exit {r.returncode}:"
                           f" {r.stderr.strip()}")
    return r.stdout


def check_available():
    """None if namespaces can be made here, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tc"):
        if not shutil.which(tool):
            return f"needs iproute2 ({tool} not found)"
    try:
        sh(["ip", "netns", "list"])
    except ClusterError as e:
        return f"ip netns does not work: {e}"
    return None


def skip_unless_available():
    """In a pytest test: skips it when namespaces cannot be made."""
    reason = check_available()
    if reason:
        import pytest
        pytest.skip(reason)


def xylem_binary():
    """The xylem binary: env XYLEM_BIN, else build/src/cli/xylem; None if
    neither is an executable file."""
    env = os.environ.get("XYLEM_BIN")
    path = Path(env) if env else REPO / "build/src/cli/xylem"
    if path.is_file() and os.access(path, os.X_OK):
        return str(path.resolve())
    return None


def rate_bits(rate):
    """tc's rate syntax ("200mbit", "1gbit", "500kbit", "1e6bit" or a bare
    number of bits per second) in bits per second. Byte units are refused
    so that a figure is never off by eight."""
    m = re.fullmatch(r"([0-9.eE+]+)(bit|kbit|mbit|gbit)?", str(rate).strip())
    if not m:
        raise ValueError(f"rate {rate!r}: use bit, kbit, mbit or gbit")
    scale = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}.get(m.group(2), 1)
    return float(m.group(1)) * scale


def tcp_efficiency(mtu):
    """The share of a capped link's rate that a TCP stream gets as payload
    with this MTU: tbf counts each frame's Ethernet header, and every
    segment carries IP and TCP headers (1448 of 1514 bytes at 1500, 0.956;
    8948 of 9014 at 9000, 0.993)."""
    return (mtu - TCP_IP_HEADERS) / (mtu + ETH_HEADER)


def list_netns():
    """Names of the namespaces that `ip netns` knows."""
    out = sh(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def proc_start_time(pid):
    """The process's start time in clock ticks (field 22 of
    /proc/PID/stat), or None if it does not exist: with the pid, it names
    a process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(state):
    """True if the process that made this cluster still runs."""
    return proc_start_time(state.get("pid", -1)) == state.get("start")


def kill_netns_procs(ns):
    """SIGKILLs every process left in the namespace."""
    out = sh(["ip", "netns", "pids", ns], check=False)
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_netns(ns):
    """Kills what runs in a namespace, then deletes it (its veth ends go
    with it, and so do their peers). Returns an error text or None."""
    if ns not in list_netns():
        return None
    kill_netns_procs(ns)
    try:
        sh(["ip", "netns", "del", ns])
    except ClusterError as e:
        return str(e)
    return None


# ------------------------------------------------------- state and stale

def state_path(prefix):
    return STATE_DIR / f"{prefix}.json"


def lock_path(subnet_index):
    return STATE_DIR / f"subnet-{NET_BASE}.{subnet_index}"


def read_state(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def teardown_state(state):
    """Removes what a state record lists: its namespaces (hosts first, the
    bridge last), its work directory if the harness made it, its subnet
    lock and the record itself. Returns the errors met, as texts."""
    errors = []
    for ns in state.get("namespaces", []):
        err = remove_netns(ns)
        if err:
            errors.append(err)
    if state.get("own_workdir") and state.get("workdir"):
        shutil.rmtree(state["workdir"], ignore_errors=True)
    if state.get("subnet_index") is not None:
        release_lock(state["subnet_index"], state["prefix"])
    state_path(state["prefix"]).unlink(missing_ok=True)
    return errors


def is_ours(ns):
    """True if the name has the harness's form: <prefix>-manager,
    <prefix>-br or <prefix>-w<i>."""
    return re.fullmatch(r"[a-z][a-z0-9]{1,15}-(manager|br|w[0-9]+)",
                        ns) is not None


def cleanup_stale(prefix="xy", force=False):
    """Removes clusters left behind by runs that died: every namespace
    whose name starts with prefix and whose cluster's owner process is
    gone (with force, also those of live owners). Returns the names of the
    namespaces removed."""
    removed = []
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    records = {}
    for path in STATE_DIR.glob(f"{prefix}*.json"):
        st = read_state(path)
        if st:
            records[st["prefix"]] = st
    for ns in list_netns():
        cp = ns.rsplit("-", 1)[0]
        if ns.startswith(prefix) and is_ours(ns) and cp not in records:
            # No record (it was lost): only the name says it is ours.
            records[cp] = {"prefix": cp, "pid": -1, "namespaces": []}
        if cp in records and ns not in records[cp]["namespaces"]:
            records[cp]["namespaces"].append(ns)
    for st in records.values():
        if force or not owner_alive(st):
            present = set(list_netns())
            removed += [ns for ns in st["namespaces"] if ns in present]
            teardown_state(st)
    return removed


# ------------------------------------------------------------- subnets

def used_networks():
    """IPv4 networks in use on this machine: routes and addresses of the
    root namespace and addresses of every other namespace."""
    nets = []
    for line in sh(["ip", "-4", "-o", "route", "show", "table", "all"],
                   check=False).splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest in ("default", "broadcast", "local", "unreachable"):
            dest = line.split()[1] if len(line.split()) > 1 else ""
        try:
            nets.append(ipaddress.ip_network(dest, strict=False))
        except ValueError:
            pass
    spaces = [None] + list_netns()
    for ns in spaces:
        cmd = ["ip"] + (["-n", ns] if ns else []) + ["-4", "-o", "addr"]
        for m in re.finditer(r"inet (\S+)", sh(cmd, check=False)):
            nets.append(ipaddress.ip_interface(m.group(1)).network)
    return nets


def claim_subnet(prefix):
    """Picks a free NET_BASE.X.0/24 at random and claims it with a lock
    file (created exclusively, so two harnesses never share one). A lock
    whose owner is gone is taken over. Returns X."""
    used = used_networks()
    order = list(range(1, 255))
    secrets.SystemRandom().shuffle(order)
    for x in order:
        net = ipaddress.ip_network(f"{NET_BASE}.{x}.0/24")
        if any(net.overlaps(u) for u in used
               if u.prefixlen > 0 and not u.is_loopback):
            continue
        if take_lock(x, prefix):
            return x
    raise ClusterError(f"no free subnet under {NET_BASE}.0.0/16")


def take_lock(x, prefix):
    """Creates subnet x's lock file naming prefix; replaces a lock whose
    cluster is no longer alive. True if this prefix now holds it."""
    path = lock_path(x)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = path.read_text().strip()
            except FileNotFoundError:
                continue                    # released meanwhile: retry
            st = read_state(state_path(holder)) if holder else None
            if st and owner_alive(st):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(prefix + "\n")
        return True
    return False


def release_lock(x, prefix):
    """Removes subnet x's lock if this prefix holds it."""
    path = lock_path(x)
    try:
        if path.read_text().strip() == prefix:
            path.unlink()
    except OSError:
        pass


# ------------------------------------------------------------ processes

class Proc:
    """A process started in a host's namespace, its stdout and stderr
    going to a log file that wait_line() reads while it runs."""

    def __init__(self, popen, log, name):
        self.p = popen
        self.log = Path(log)
        self.name = name
        self.kept = None    # the log's text, once the cluster is gone

    @property
    def pid(self):
        return self.p.pid

    @property
    def output(self):
        """Everything it has written so far; still there after the
        cluster (and its work directory with the log) is gone."""
        if self.kept is not None:
            return self.kept
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def keep(self):
        """Reads the log into memory, before the log is removed."""
        self.kept = self.output

    def poll(self):
        return self.p.poll()

    def wait_line(self, pattern, timeout):
        """Waits until a line of the log matches the regex; returns the
        match. Raises ClusterError on timeout or if the process exits."""
        rx = re.compile(pattern, re.M)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.output)
            if m:
                return m
            if self.p.poll() is not None:
                m = rx.search(self.output)
                if m:
                    return m
                raise ClusterError(f"{self.name} exited ({self.p.returncode})"
                                   f" before /{pattern}/:\n{self.output}")
            if time.monotonic() > end:
                raise ClusterError(f"{self.name}: no /{pattern}/ within"
                                   f" {timeout} s:\n{self.output}")
            time.sleep(0.05)

    def wait(self, timeout):
        """Waits for the exit and returns the status; raises ClusterError
        (after killing it) if it runs past timeout."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_popens([self.p], 0)
            raise ClusterError(f"{self.name} did not exit within {timeout}"
                               f" s:\n{self.output}") from None

    def stop(self, grace=5):
        stop_popens([self.p], grace)


def signal_popen(p, sig):
    """Signals a process's group if it leads one, else the process."""
    try:
        if os.getpgid(p.pid) == p.pid:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_popens(popens, grace):
    """SIGTERM to every live one, up to grace seconds for all of them to
    exit, then SIGKILL; every one is reaped."""
    live = [p for p in popens if p.poll() is None]
    for p in live:
        signal_popen(p, signal.SIGTERM)
    end = time.monotonic() + grace
    for p in live:
        try:
            p.wait(max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_popen(p, signal.SIGKILL)
            p.wait()


# -------------------------------------------------------------- cluster

class Cluster:
    """N worker hosts and a manager host in namespaces, linked through a
    bridge with every link capped at rate (manager_rate for the manager's,
    if given). Use it as a context manager; see the module's text."""

    def __init__(self, n_workers, rate="200mbit", manager_rate=None,
                 prefix=None, workdir=None, binary=None, mtu=1500):
        # Worker i is .(10+i) of the /24: 244 workers fill it.
        if not 1 <= n_workers <= MAX_WORKERS:
            raise ValueError(f"n_workers: 1 to {MAX_WORKERS}")
        if not MTU_MIN <= mtu <= MTU_MAX:
            raise ValueError(f"mtu: {MTU_MIN} to {MTU_MAX}")
        self.mtu = mtu
        self.n_workers = n_workers
        self.rate = rate
        self.manager_rate = manager_rate or rate
        rate_bits(self.rate), rate_bits(self.manager_rate)  # validate
        self.prefix = prefix or "xy" + secrets.token_hex(3)
        if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", self.prefix):
            raise ValueError("prefix: a letter, then 1-15 of [a-z0-9]")
        self.hosts = [MANAGER] + [f"w{i}" for i in range(n_workers)]
        self.bridge_ns = f"{self.prefix}-br"
        self.own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.binary = binary
        self.subnet_index = None
        self.manager_port = None
        self._popens = []
        self._procs = []
        self._old_handlers = {}
        self._lock = threading.Lock()

    # ----- names and addresses

    def ns(self, host):
        """The namespace of a host ("manager", "w0"...)."""
        if host not in self.hosts:
            raise KeyError(f"no host {host!r} (hosts: {self.hosts})")
        return f"{self.prefix}-{host}"

    def addr(self, host):
        """The host's IPv4 address, as a string."""
        self.ns(host)  # checks the name
        index = 1 if host == MANAGER else 10 + int(host[1:])
        return f"{NET_BASE}.{self.subnet_index}.{index}"

    @property
    def subnet(self):
        return f"{NET_BASE}.{self.subnet_index}.0/24"

    def worker(self, i):
        return f"w{i}"

    def host_rate(self, host):
        """The host's cap, in bits per second."""
        return rate_bits(self.manager_rate if host == MANAGER else self.rate)

    # ----- building and tearing down

    def __enter__(self):
        reason = check_available()
        if reason:
            raise Unavailable(reason)
        taken = [ns for ns in list_netns()
                 if ns.startswith(self.prefix + "-")]
        if taken:
            raise ClusterError(f"prefix {self.prefix} in use: {taken}")
        self._catch_signals()
        try:
            self._build()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, *exc):
        self._teardown()
        return False

    def _catch_signals(self):
        """While the cluster exists, SIGTERM and SIGHUP raise SystemExit
        (so the `with` block unwinds and cleans up) instead of killing the
        process outright. Only from the main thread, where Python allows
        handlers."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, frame):
            raise SystemExit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def _hold_signals(self):
        """Ignores SIGINT, SIGTERM and SIGHUP while tearing down (a few
        seconds at most), so that a second ^C does not leave half a
        cluster; _restore_signals puts the caller's handlers back."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old = signal.signal(sig, signal.SIG_IGN)
            self._old_handlers.setdefault(sig, old)

    def _restore_signals(self):
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}

    def _state(self):
        return {"prefix": self.prefix, "pid": os.getpid(),
                "start": proc_start_time(os.getpid()),
                "subnet_index": self.subnet_index,
                "workdir": str(self.workdir) if self.workdir else None,
                "own_workdir": self.own_workdir,
                "namespaces": [self.ns(h) for h in self.hosts]
                + [self.bridge_ns]}

    def _save_state(self):
        state_path(self.prefix).write_text(json.dumps(self._state()))

    def _build(self):
        """Makes the state record first (so that a crash at any later
        point leaves something cleanup_stale can find), then the subnet,
        work directory, namespaces, bridge, links and caps."""
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._save_state()
        self.subnet_index = claim_subnet(self.prefix)
        if self.own_workdir:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self._save_state()
        self._make_ns(self.bridge_ns)
        # With br_netfilter loaded, every bridged frame walks the (empty)
        # iptables chains of the bridge's namespace: a tenth of the CPU
        # of a busy cluster, for nothing. The sysctls are per namespace
        # (absent without br_netfilter): off here only.
        sh(["ip", "netns", "exec", self.bridge_ns, "sysctl", "-qw",
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0"], check=False)
        sh(["ip", "-n", self.bridge_ns, "link", "add", BRIDGE, "type",
            "bridge", "stp_state", "0", "forward_delay", "0"])
        sh(["ip", "-n", self.bridge_ns, "link", "set", BRIDGE, "up"])
        for host in self.hosts:
            self._make_host(host)

    def _make_ns(self, ns):
        """A namespace with lo up and IPv6 off (so that nothing but the
        traffic that the tests make crosses the bridge)."""
        if ns in list_netns():
            raise ClusterError(f"namespace {ns} exists already")
        sh(["ip", "netns", "add", ns])
        sh(["ip", "netns", "exec", ns, "sysctl", "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _make_host(self, host):
        """A host: its namespace, a veth pair from the bridge's namespace
        (v-<host> on the bridge, eth0 in the host), its address, and a tbf
        cap on both ends."""
        ns, port = self.ns(host), f"v-{host}"
        self._make_ns(ns)
        sh(["ip", "-n", self.bridge_ns, "link", "add", port, "type", "veth",
            "peer", "name", IFACE, "netns", ns])
        sh(["ip", "-n", self.bridge_ns, "link", "set", port, "mtu",
            str(self.mtu), "master", BRIDGE, "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev",
            IFACE])
        sh(["ip", "-n", ns, "link", "set", IFACE, "mtu", str(self.mtu), "up"])
        rate = self.manager_rate if host == MANAGER else self.rate
        self._cap(ns, IFACE, rate)                  # the host's upload
        self._cap(self.bridge_ns, port, rate)       # the host's download

    def _cap(self, ns, dev, rate):
        """tbf on dev's egress. The bucket holds 2 ms of traffic (at least
        16 full frames): small enough that the rate holds over any
        transfer worth timing, large enough for the timer's granularity."""
        burst = max(int(rate_bits(rate) / 8 * 0.002),
                    16 * (self.mtu + ETH_HEADER))
        sh(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
            "rate", str(rate), "burst", str(burst), "latency",
            TBF_LATENCY])

    def _teardown(self):
        """Stops the processes started here (SIGTERM, 5 s, SIGKILL), then
        removes everything the state record lists. Never raises: errors
        are printed, so that they do not hide the exception that ended
        the block."""
        self._hold_signals()
        try:
            stop_popens(self._popens, 5)
            for proc in self._procs:
                proc.keep()
        finally:
            errors = teardown_state(self._state())
            self._restore_signals()
            for e in errors:
                print(f"cluster {self.prefix}: cleanup: {e}", file=sys.stderr)

    # ----- running things in hosts

    def run(self, host, argv, **popen_kw):
        """Starts argv in the host's namespace (`ip netns exec`) and returns
        the subprocess.Popen. It runs in a session of its own unless
        start_new_session is given; the cluster stops it at the end."""
        popen_kw.setdefault("start_new_session", True)
        popen_kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(host),
                              *map(str, argv)], **popen_kw)
        with self._lock:
            self._popens.append(p)
        return p

    def check_output(self, host, argv, timeout=60):
        """Runs argv in the host to the end; returns its stdout. Raises
        ClusterError if it fails."""
        return sh(["ip", "netns", "exec", self.ns(host), *map(str, argv)],
                  timeout=timeout)

    def spawn(self, host, argv, name=None, env=None, cwd=None):
        """Starts argv in the host with its output in a log file under
        the work directory; returns a Proc."""
        name = name or f"{host}-{Path(str(argv[0])).name}"
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{name}-{secrets.token_hex(2)}.log"
        with open(log, "wb") as f:
            p = self.run(host, argv, stdout=f, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd)
        proc = Proc(p, log, name)
        with self._lock:
            self._procs.append(proc)
        return proc

    def host_env(self, host, extra=None):
        """The environment for a process in a host: ours, with TMPDIR a
        directory of the host's own under the work directory (a worker's
        cache goes there)."""
        tmp = self.workdir / "tmp" / host
        tmp.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR=str(tmp))
        env.update(extra or {})
        return env

    def _xylem(self):
        binary = self.binary or xylem_binary()
        if not binary:
            raise ClusterError("no xylem binary: set XYLEM_BIN or build"
                               " build/src/cli/xylem")
        return binary

    def start_manager(self, workflow, secret_file, *extra, port=0,
                      timeout=30, env=None, cwd=None):
        """`xylem run WORKFLOW --workers 0 --port P --secret-file F EXTRA`
        on the manager host; waits until it listens. Returns (Proc, port);
        the port is kept for start_worker."""
        argv = [self._xylem(), "run", workflow, "--workers", "0", "--port",
                port, "--secret-file", secret_file, *extra]
        proc = self.spawn(MANAGER, argv, name="manager",
                          env=self.host_env(MANAGER, env), cwd=cwd)
        m = proc.wait_line(r"waiting for workers on port (\d+)", timeout)
        self.manager_port = int(m.group(1))
        return proc, self.manager_port

    def start_worker(self, i, secret_file, *extra, port=None, cores=1,
                     wait=True, timeout=30, env=None):
        """`xylem worker MANAGER:P --secret-file F --transfer-host ADDR
        --cores N --name wI EXTRA` on worker host i; with wait, returns
        once it has connected. Returns the Proc."""
        host = self.worker(i)
        port = port or self.manager_port
        argv = [self._xylem(), "worker", f"{self.addr(MANAGER)}:{port}",
                "--secret-file", secret_file, "--transfer-host",
                self.addr(host), "--cores", cores, "--name", host, *extra]
        proc = self.spawn(host, argv, name=host,
                          env=self.host_env(host, env))
        if wait:
            proc.wait_line(r"connected to ", timeout)
        return proc

    # ----- observing links

    def counters(self, host):
        """Bytes through the host's eth0 so far: {"rx": n, "tx": n}."""
        out = sh(["ip", "-n", self.ns(host), "-s", "-j", "link", "show",
                  "dev", IFACE])
        stats = json.loads(out)[0]["stats64"]
        return {"rx": stats["rx"]["bytes"], "tx": stats["tx"]["bytes"]}

    def qdiscs(self, host):
        """The root qdiscs on both ends of the host's link, as tc prints
        them: (host side, bridge side)."""
        return (sh(["tc", "-n", self.ns(host), "qdisc", "show", "dev",
                    IFACE]),
                sh(["tc", "-n", self.bridge_ns, "qdisc", "show", "dev",
                    f"v-{host}"]))


# ----------------------------------------------------------------- CLI

def main(argv):
    """python3 cluster.py up N [RATE [PREFIX [MTU]]] | cleanup [PREFIX]
    [--force] | list"""
    cmd = argv[1] if len(argv) > 1 else "help"
    if cmd == "up":
        return cmd_up(argv[2:])
    if cmd == "cleanup":
        force = "--force" in argv
        args = [a for a in argv[2:] if a != "--force"]
        removed = cleanup_stale(args[0] if args else "xy", force=force)
        print("removed:", " ".join(removed) or "nothing")
        return 0
    if cmd == "list":
        for path in sorted(STATE_DIR.glob("*.json")):
            st = read_state(path) or {}
            alive = "alive" if owner_alive(st) else "stale"
            print(st.get("prefix"), st.get("pid"), alive,
                  f"{NET_BASE}.{st.get('subnet_index')}.0/24",
                  " ".join(st.get("namespaces", [])))
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


def cmd_up(args):
    """Makes a cluster, prints its hosts, and holds it until interrupted
    (by ^C, SIGTERM or SIGHUP), then removes it."""
    n = int(args[0]) if args else 2
    rate = args[1] if len(args) > 1 else "200mbit"
    prefix = args[2] if len(args) > 2 else None
    mtu = int(args[3]) if len(args) > 3 else 1500
    with Cluster(n, rate=rate, prefix=prefix, mtu=mtu) as c:
        for h in c.hosts:
            print(f"{h} {c.ns(h)} {c.addr(h)}")
        print(f"ready {c.prefix} {c.subnet} {rate}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
