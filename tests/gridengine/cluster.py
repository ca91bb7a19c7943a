"""A real Grid Engine cell on this one machine, for Xylem's tests of the
`gridengine` pool provider (docs/scaling.md, "Grid Engine").

    with GridEngineCluster() as c:
        job = c.qsub("-b", "y", "-pe", "smp", "2", "sleep", "5")
        c.wait_gone(job, 30)

Debian's Grid Engine 8.1.9 (gridengine-master, -exec, -client): one
sge_qmaster and one sge_execd on this host, a queue `all.q` of 16 slots
(SLOTS) with a parallel environment `smp` ($pe_slots: a job's slots on
one host), the scheduler run every second. Grid Engine names an execution
host by its host name, so one sge_execd is all one machine can run; the
queue's slots are what lets several jobs run at once.

Everything lives in a fresh directory: an SGE_ROOT of its own (links to
the packaged programs, a cell `xytest` with classic spooling, a
bootstrap whose admin user is root), the spools, logs and accounting.
Installing the packages with their debconf question "configure
automatically" answered no (scripts/deps.sh) leaves /var/lib/gridengine
without a cell, and nothing here reads or changes it. The ports are
picked free at start. Clients find the cell through SGE_ROOT, SGE_CELL,
SGE_QMASTER_PORT and SGE_EXECD_PORT: use `c.env` (or `c.run`, `c.qsub`);
jobs get them too. The cell's host_aliases makes 127.0.0.1's name
("localhost" in /etc/hosts) and this host's name one host: without it the
qmaster refuses its own clients ("client IP resolved to host name
localhost. This is not identical to clients host name").

stop() deletes the jobs left, shuts the daemons down (`qconf -kej`,
`qconf -km`), waits for them to exit, kills whatever process still
carries the cell's SGE_ROOT (a job that outlived its execd) and removes
the directory, unless keep=True.

Python standard library only; needs root (the execd runs jobs as their
users; the cell's min_uid is 0 so that root's jobs run).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from batch_common import (free_ports as _free_ports, pid_alive,  # noqa: E402
                          processes_with_env, wait_until)

TOOLS = ("qsub", "qstat", "qdel", "qconf", "qacct")
LIB = Path("/usr/lib/gridengine")   # sge_qmaster, sge_execd, spoolinit
SHARE = Path("/usr/share/gridengine")
CELL = "xytest"
SLOTS = 16


class GridEngineError(Exception):
    """The cell could not be made, or a Grid Engine command failed."""


def check_available():
    """None if a cell can be started here, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root (sge_execd runs jobs as their users)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    missing += [str(LIB / p) for p in ("sge_qmaster", "sge_execd",
                                       "spoolinit", "spooldefaults")
                if not (LIB / p).exists()]
    if missing:
        return (f"needs Grid Engine ({', '.join(missing)} not found;"
                " scripts/deps.sh test installs gridengine-master,"
                " gridengine-exec and gridengine-client)")
    return None


def free_ports(n):
    """A run of n consecutive TCP ports free on 127.0.0.1 now."""
    return _free_ports(n, GridEngineError)


QUEUE = """qname all.q
hostlist {host}
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp
rerun FALSE
slots {slots}
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode unix_behavior
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
"""

PE = """pe_name smp
slots 999
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $pe_slots
control_slaves TRUE
job_is_first_task TRUE
urgency_slots min
accounting_summary TRUE
qsort_args NONE
"""

EXECHOST = """hostname {host}
load_scaling NONE
complex_values NONE
user_lists NONE
xuser_lists NONE
projects NONE
xprojects NONE
usage_scaling NONE
report_variables NONE
"""


class GridEngineCluster:
    """A qmaster and an execd on this host; see the module's text."""

    def __init__(self, slots=SLOTS, directory=None, keep=False):
        self.slots = slots
        self.keep = keep
        self.dir = Path(directory or tempfile.mkdtemp(prefix="xyge-"))
        self.root = self.dir / "root"
        self.host = socket.gethostname()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SGE_", "PE_")) and
                    k not in ("JOB_ID", "JOB_NAME", "NSLOTS", "QUEUE")}
        self.env.update(SGE_ROOT=str(self.root), SGE_CELL=CELL)
        self.started = False
        self.pids = []

    # -------------------------------------------------------- commands

    def run(self, *argv, check=True, timeout=30):
        """Runs a Grid Engine client against this cell; returns its
        stdout. Raises GridEngineError with its output if it fails and
        check is true."""
        try:
            r = subprocess.run([str(a) for a in argv], env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=timeout, cwd=self.dir)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise GridEngineError(f"{argv[0]}: {e}") from None
        if check and r.returncode != 0:
            raise GridEngineError(f"{' '.join(map(str, argv))}: exit"
                                  f" {r.returncode}: {r.stdout.strip()}"
                                  f" {r.stderr.strip()}")
        return r.stdout

    def qsub(self, *args):
        """Submits a job (`qsub -terse ARGS`); returns its id."""
        return self.run("qsub", "-terse", *args).strip()

    def jobs(self):
        """{id: (name, state)} of every job in the queue, all users'."""
        out = self.run("qstat", "-u", "*", "-xml", check=False)
        jobs = {}
        for block in re.findall(r"<job_list.*?</job_list>", out, re.S):
            f = dict(re.findall(r"<(\w+)>([^<]*)</\1>", block))
            jobs[f.get("JB_job_number")] = (f.get("JB_name"),
                                            f.get("state"))
        return jobs

    def wait_gone(self, job_id, timeout):
        """Waits until the job has left the queue."""
        if not wait_until(lambda: job_id not in self.jobs(), timeout, 0.2):
            raise GridEngineError(f"job {job_id} still queued after"
                                  f" {timeout} s: {self.jobs()}"
                                  f"\n{self.logs()}")

    def logs(self, lines=15):
        """The last lines of the daemons' messages files, for failures."""
        parts = []
        for f in sorted(self.root.glob("spool/**/messages")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(parts)

    # ------------------------------------------------------ start, stop

    def _checked(self, *argv, timeout=30):
        r = subprocess.run([str(a) for a in argv], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout, cwd=self.dir)
        if r.returncode != 0:
            raise GridEngineError(f"{argv[0]}: exit {r.returncode}:"
                                  f" {r.stdout.strip()} {r.stderr.strip()}"
                                  f"\n{self.logs()}")
        return r.stdout

    def write_cell(self):
        """The SGE_ROOT, the cell's bootstrap and its spooled defaults
        (what Debian's init_cluster does, with paths of our own)."""
        r = self.root
        common = r / CELL / "common"
        for sub in ("bin", "lib", "utilbin"):
            (r / sub).mkdir(parents=True, exist_ok=True)
            (r / sub / "lx-amd64").symlink_to(LIB)
        (r / "util").symlink_to(SHARE / "util")
        common.mkdir(parents=True)
        (r / "spool" / "qmaster").mkdir(parents=True)
        (r / "spool" / "execd").mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        params = f"{common};{r}/spool/qmaster"
        (common / "bootstrap").write_text(
            "# Version: 8.1.9\n"
            "admin_user root\n"
            "default_domain none\n"
            "ignore_fqdn true\n"
            "spooling_method classic\n"
            "spooling_lib libspoolc\n"
            f"spooling_params {params}\n"
            f"binary_path {LIB}\n"
            f"qmaster_spool_dir {r}/spool/qmaster\n"
            "security_mode none\n"
            "listener_threads 2\n"
            "worker_threads 2\n"
            "scheduler_threads 1\n")
        names = [n for n in {self.host, "localhost",
                             socket.getfqdn()} if n != self.host]
        (common / "host_aliases").write_text(
            f"{self.host} {' '.join(names)}\n")
        conf = (SHARE / "default-configuration").read_text()
        subs = {
            "execd_spool_dir": f"{r}/spool/execd",
            # root's jobs run (the tests run as root)
            "min_uid": "0", "min_gid": "0",
            "load_report_time": "00:00:02",
            "max_unheard": "00:00:30",
            # accounting is written at once: qacct tells how a job ended
            "reporting_params": "accounting=true reporting=false"
                                " flush_time=00:00:01 joblog=false"
                                " sharelog=00:00:00"
                                " accounting_flush_time=00:00:00",
            "mailer": "/bin/true",
        }
        for k, v in subs.items():
            conf = re.sub(rf"(?m)^{k}\s.*$", f"{k} {v}", conf)
        (self.dir / "configuration").write_text(conf)
        self._checked(LIB / "spoolinit", "classic", "libspoolc", params,
                      "init")
        # spooldefaults reads its template by absolute path only (a
        # relative one fails, exit 1, without a word).
        self._checked(LIB / "spooldefaults", "configuration",
                      self.dir / "configuration")
        self._checked(LIB / "spooldefaults", "complexes",
                      SHARE / "util/resources/centry")
        self._checked(LIB / "spooldefaults", "usersets",
                      SHARE / "util/resources/usersets")
        self._checked(LIB / "spooldefaults", "managers", "root")
        self._checked(LIB / "spooldefaults", "operators", "root")

    def configure(self):
        """Execution and submit host, scheduler, parallel environment and
        queue, through the running qmaster."""
        d = self.dir
        (d / "exechost").write_text(EXECHOST.format(host=self.host))
        self._checked("qconf", "-Ae", d / "exechost")
        self._checked("qconf", "-as", self.host)
        sconf = self._checked("qconf", "-ssconf")
        for k, v in {"schedule_interval": "0:0:1",
                     "flush_submit_sec": "1", "flush_finish_sec": "1",
                     "job_load_adjustments": "NONE",
                     "load_adjustment_decay_time": "0:0:0"}.items():
            sconf = re.sub(rf"(?m)^{k}\s.*$", f"{k} {v}", sconf)
        (d / "sconf").write_text(sconf)
        self._checked("qconf", "-Msconf", d / "sconf")
        (d / "pe").write_text(PE)
        self._checked("qconf", "-Ap", d / "pe")
        (d / "queue").write_text(QUEUE.format(host=self.host,
                                              slots=self.slots))
        self._checked("qconf", "-Aq", d / "queue")

    def start(self, timeout=30):
        """Makes the cell, starts sge_qmaster, configures it, starts
        sge_execd and waits until the queue takes jobs. Raises
        GridEngineError, with the logs, if it does not within timeout s."""
        reason = check_available()
        if reason:
            raise GridEngineError(reason)
        self.started = True
        try:
            base = free_ports(2)
            self.env.update(SGE_QMASTER_PORT=str(base),
                            SGE_EXECD_PORT=str(base + 1))
            self.write_cell()
            self._checked(LIB / "sge_qmaster")
            if not wait_until(lambda: subprocess.run(
                    ["qconf", "-sh"], env=self.env, capture_output=True,
                    stdin=subprocess.DEVNULL).returncode == 0, timeout, 0.2):
                raise GridEngineError(f"qmaster not up in {timeout} s\n"
                                      f"{self.logs()}")
            self.configure()
            self._checked(LIB / "sge_execd")
            self.wait_ready(timeout)
            self.pids = self.daemon_pids()
        except BaseException:
            self.stop()
            raise

    def queue_line(self):
        out = self.run("qstat", "-f", "-q", "all.q", check=False)
        return next((ln for ln in out.splitlines()
                     if ln.startswith("all.q@")), "")

    def wait_ready(self, timeout):
        """Waits until the execd reported its load and the queue
        instance has no state flag (u: unknown, its execd not heard)."""
        def ready():
            f = self.queue_line().split()
            return len(f) == 5 and f[3] != "-NA-"
        if not wait_until(ready, timeout, 0.2):
            raise GridEngineError(f"queue not ready after {timeout} s:"
                                  f" {self.queue_line()!r}\n{self.logs()}")

    def daemon_pids(self):
        pids = []
        for f in self.root.glob("spool/**/*.pid"):
            try:
                pids.append(int(f.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return [p for p in pids if pid_alive(p)]

    def leftovers(self):
        """Processes of this cell still alive: its daemons and whatever
        carries its SGE_ROOT (jobs and their children)."""
        found = set(self.daemon_pids())
        found.update(p for p in self.pids if pid_alive(p))
        found.update(processes_with_env("SGE_ROOT", str(self.root)))
        return sorted(found)

    def stop(self, timeout=20):
        """Deletes every job, stops the daemons and removes the directory
        (unless keep). Returns the pids it had to SIGKILL."""
        killed = []
        if self.started:
            self.started = False
            self.pids += self.daemon_pids()
            if self.pids:
                self.run("qdel", "-f", "-u", "*", check=False)
                wait_until(lambda: not self.jobs(), timeout / 2, 0.2)
                self.run("qconf", "-kej", self.host, check=False)
                self.run("qconf", "-km", check=False)
                wait_until(lambda: not any(map(pid_alive, self.pids)),
                           timeout / 2)
            killed = self.leftovers()
            for pid in killed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_until(lambda: not self.leftovers(), 5)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return killed

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # By hand: `python3 tests/gridengine/cluster.py` starts a cell, prints
    # the variables to use, and stops it at ^C.
    c = GridEngineCluster()
    t0 = time.monotonic()
    c.start()
    print(f"up in {time.monotonic() - t0:.1f} s: export"
          f" SGE_ROOT={c.root} SGE_CELL={CELL}"
          f" SGE_QMASTER_PORT={c.env['SGE_QMASTER_PORT']}"
          f" SGE_EXECD_PORT={c.env['SGE_EXECD_PORT']}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        t0 = time.monotonic()
        left = c.stop()
        print(f"down in {time.monotonic() - t0:.1f} s;"
              f" killed {left or 'nothing'}")
