"""A real Slurm cluster on this one machine, for Xylem's tests of workers
started by a batch system (docs/scaling.md, "The test cluster").

    with SlurmCluster() as c:
        job = c.sbatch("-p", "cpu", "-c", "4", "--wrap", "hostname")
        c.wait_job(job, "COMPLETED", 30)

One slurmctld and one slurmd per node, all on 127.0.0.1: Debian's slurmd is
built with --enable-multiple-slurmd, so `slurmd -N NAME` runs a node of
that name, on its own port, with its own spool, pid and log files. By
default six CPU nodes c1..c6 (8 CPUs, 16000 MB) in partition `cpu` and two
GPU nodes g1, g2 (8 CPUs, 32000 MB, gres gpu:2) in partition `gpu`; every
node is this same host (SlurmdParameters=config_overrides lets it claim
CPUs and memory it lacks). The GPUs are empty files named as device files
(gres.conf's File=), which is all Slurm checks.

Everything lives in a fresh directory: slurm.conf and gres.conf, the
state, spools, pids and logs, and a munged of the cluster's own (its own
key and socket, named in slurm.conf's AuthInfo), so that the system's
/etc/munge and /etc/slurm are neither read nor changed. The ports are
picked free at start. Clients find the cluster through SLURM_CONF: use
`c.env` (or `c.run`, `c.sbatch`), and jobs inherit it.

stop() cancels the jobs left, stops the daemons (`scontrol shutdown`),
waits for them to exit, kills whatever process still carries the
cluster's SLURM_CONF (a job step that outlived its slurmd), stops munged
and removes the directory, unless keep=True. It runs when the `with`
block ends however it ends.

Python standard library only; needs root (slurmd runs jobs as their
users) and Debian's munge, slurmctld, slurmd and slurm-client packages
(scripts/deps.sh installs them).
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from batch_common import (free_ports as _free_ports, pid_alive,  # noqa: E402
                          processes_with, processes_with_env, wait_until)

TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue",
         "scancel", "scontrol", "sinfo")


class SlurmError(Exception):
    """The cluster could not be made, or a Slurm command failed."""


def check_available():
    """None if a cluster can be started here, else the reason why not."""
    if os.geteuid() != 0:
        return "needs root (slurmd runs jobs as their users)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return (f"needs Slurm and munge ({', '.join(missing)} not found;"
                " scripts/deps.sh test installs them)")
    return None


def free_ports(n):
    """A run of n consecutive TCP ports free on 127.0.0.1 now."""
    return _free_ports(n, SlurmError)


def make_device(path):
    """A character device node that stands for a GPU: a copy of /dev/null
    (major 1, minor 3). slurmd sets a job's SLURM_JOB_GPUS and
    CUDA_VISIBLE_DEVICES only for gres files that are devices; a plain
    file gives the job its GPU count alone."""
    if not path.exists():
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))


class NodeGroup:
    """Nodes of one shape: names PREFIX1..PREFIXn in one partition."""

    def __init__(self, prefix, count, partition, cpus=8, memory_mb=16000,
                 gpus=0, default=False):
        self.prefix = prefix
        self.count = count
        self.partition = partition
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.gpus = gpus
        self.default = default

    @property
    def names(self):
        return [f"{self.prefix}{i}" for i in range(1, self.count + 1)]

    @property
    def range(self):
        return f"{self.prefix}[1-{self.count}]"


class SlurmCluster:
    """A slurmctld and one slurmd per node on loopback; see the module's
    text. groups: NodeGroups (default: six CPU and two GPU nodes)."""

    def __init__(self, groups=None, directory=None, keep=False):
        if groups is None:
            groups = [NodeGroup("c", 6, "cpu", 8, 16000, default=True),
                      NodeGroup("g", 2, "gpu", 8, 32000, gpus=2)]
        self.groups = [g for g in groups if g.count > 0]
        self.nodes = [n for g in self.groups for n in g.names]
        self.keep = keep
        self.dir = Path(directory or tempfile.mkdtemp(prefix="xyslurm-"))
        self.conf = self.dir / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        # Slurm's own variables from a job this test runs inside would
        # confuse the clients and the daemons.
        for k in [k for k in self.env if k.startswith("SLURM_")]:
            if k != "SLURM_CONF":
                del self.env[k]
        self.started = False
        self.munged = False
        self.pids = []  # the daemons', once up

    # -------------------------------------------------------- commands

    def run(self, *argv, check=True, timeout=30):
        """Runs a Slurm client against this cluster; returns its stdout.
        Raises SlurmError with its stderr if it fails and check is true."""
        try:
            r = subprocess.run([str(a) for a in argv], env=self.env,
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SlurmError(f"{argv[0]}: {e}") from None
        if check and r.returncode != 0:
            raise SlurmError(f"{' '.join(map(str, argv))}: exit"
                             f" {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def sbatch(self, *args):
        """Submits a job (`sbatch --parsable ARGS`); returns its id."""
        out = self.run("sbatch", "--parsable", *args)
        return out.strip().split(";")[0]

    def job(self, job_id):
        """The job's fields from `scontrol show job` as a dict (JobState,
        NodeList, ...), or None once Slurm has forgotten it."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        if not out.strip():
            return None
        return dict(re.findall(r"(\S+?)=(\S*)", out))

    def job_state(self, job_id):
        j = self.job(job_id)
        return j.get("JobState") if j else None

    def wait_job(self, job_id, states, timeout):
        """Waits until the job is in one of states (a name or a tuple);
        returns the state. Raises SlurmError, with the logs, if it is not
        in time."""
        if isinstance(states, str):
            states = (states,)
        state = wait_until(lambda: self.job_state(job_id) in states and
                           self.job_state(job_id), timeout, 0.2)
        if not state:
            raise SlurmError(f"job {job_id} is {self.job_state(job_id)},"
                             f" not {'/'.join(states)}, after {timeout} s"
                             f"\n{self.logs()}")
        return state

    def jobcomp(self):
        """The job completion log: one dict a job that ended (JobId,
        Name, JobState, Partition, NodeList, ProcCnt, ...), oldest
        first."""
        try:
            text = (self.dir / "log" / "jobcomp.log").read_text()
        except OSError:
            return []
        return [dict(re.findall(r"(\S+?)=(\S*)", line))
                for line in text.splitlines() if line.strip()]

    def node_states(self):
        """{node: state} from sinfo, e.g. {"c1": "idle", "g1": "mixed"}."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False)
        return dict(line.split()[:2] for line in out.splitlines()
                    if len(line.split()) >= 2)

    def logs(self, lines=15):
        """The last lines of every log of the cluster, for failures."""
        parts = []
        for f in sorted((self.dir / "log").glob("*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(parts)

    # ------------------------------------------------------ start, stop

    def write_config(self):
        d = self.dir
        for sub in ("ctld", "run", "log", "dev"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for n in self.nodes:
            (d / "spool" / n).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        nports = 1 + sum(g.count for g in self.groups)
        base = free_ports(nports)
        self.ctld_port = base
        lines = [
            "ClusterName=xytest",
            "SlurmctldHost=localhost",
            "SlurmUser=root",
            f"SlurmctldPort={base}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={d}/munge/munge.socket",
            f"StateSaveLocation={d}/ctld",
            f"SlurmctldPidFile={d}/run/slurmctld.pid",
            f"SlurmctldLogFile={d}/log/slurmctld.log",
            f"SlurmdSpoolDir={d}/spool/%n",
            f"SlurmdPidFile={d}/run/slurmd.%n.pid",
            f"SlurmdLogFile={d}/log/slurmd.%n.log",
            "SlurmdParameters=config_overrides",
            "SchedulerType=sched/backfill",
            # Batch jobs start at once, not at the next pass up to 3 s
            # later (the default delay).
            "SchedulerParameters=batch_sched_delay=0",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            # linuxproc follows children by parentage, so a job's
            # processes are found even after setsid (xylem's tasks).
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={d}/log/jobcomp.log",
            "ReturnToService=2",
            "KillWait=5",
            "MinJobAge=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "GresTypes=gpu",
            "NodeName=DEFAULT Sockets=1 ThreadsPerCore=1 State=UNKNOWN",
        ]
        gres = []
        port = base + 1
        for g in self.groups:
            # NodeHostname and NodeAddr are refused on the DEFAULT line.
            line = (f"NodeName={g.range} NodeHostname={host}"
                    f" NodeAddr=127.0.0.1 Port=[{port}-{port + g.count - 1}]"
                    f" CoresPerSocket={g.cpus} CPUs={g.cpus}"
                    f" RealMemory={g.memory_mb}")
            port += g.count
            if g.gpus:
                line += f" Gres=gpu:{g.gpus}"
                # Without File=, a GPU node registers with no GPUs and
                # is marked INVAL.
                gres.append(f"NodeName={g.range} Name=gpu"
                            f" File={d}/dev/nvidia[0-{g.gpus - 1}]")
                for i in range(g.gpus):
                    make_device(d / "dev" / f"nvidia{i}")
            lines.append(line)
        parts = {}
        for g in self.groups:
            parts.setdefault(g.partition, []).append(g)
        for name, gs in parts.items():
            default = " Default=YES" if any(g.default for g in gs) else ""
            nodes = ",".join(g.range for g in gs)
            lines.append(f"PartitionName={name} Nodes={nodes}{default}"
                         " MaxTime=30 State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        (d / "gres.conf").write_text("\n".join(gres) + "\n")

    def start_munged(self):
        """A munged of the cluster's own: its key, socket and files in
        the cluster's directory (munged wants every directory above its
        socket searchable by all)."""
        m = self.dir / "munge"
        m.mkdir(exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(m, 0o755)
        key = m / "munge.key"
        # Without SLURM_CONF: leftovers() would take it for a job.
        env = dict(os.environ)
        env.pop("SLURM_CONF", None)
        self._checked(["mungekey", "-c", "-k", key], env=env)
        self._checked(["munged", f"--socket={m}/munge.socket",
                       f"--key-file={key}", f"--pid-file={m}/munged.pid",
                       f"--seed-file={m}/munged.seed",
                       f"--log-file={self.dir}/log/munged.log"], env=env)
        self.munged = True

    def _checked(self, argv, timeout=30, env=None):
        r = subprocess.run([str(a) for a in argv], env=env or self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise SlurmError(f"{argv[0]}: exit {r.returncode}:"
                             f" {r.stderr.strip()}\n{self.logs()}")

    def start(self, timeout=30):
        """Writes the configuration, starts munged, slurmctld and the
        slurmd of every node, and waits until every node is idle. Raises
        SlurmError, with the logs, if they are not within timeout s."""
        reason = check_available()
        if reason:
            raise SlurmError(reason)
        self.started = True
        try:
            self.write_config()
            self.start_munged()
            # -c: a clean start, whatever state the directory held.
            self._checked(["slurmctld", "-c"])
            for n in self.nodes:
                self._checked(["slurmd", "-N", n])
            self.wait_idle(timeout)
            # Kept now: the daemons remove their pid files before they
            # are done exiting.
            self.pids = self.daemon_pids()
        except BaseException:
            self.stop()
            raise

    def wait_idle(self, timeout):
        """Waits until every node is idle."""
        ok = wait_until(lambda: all(
            self.node_states().get(n) == "idle" for n in self.nodes),
            timeout, 0.2)
        if not ok:
            raise SlurmError(f"nodes not idle after {timeout} s:"
                             f" {self.node_states()}\n{self.logs()}")

    def daemon_pids(self):
        """The pids in the daemons' pid files, of those still alive."""
        pids = []
        for f in (self.dir / "run").glob("*.pid"):
            try:
                pids.append(int(f.read_text().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
        return [p for p in pids if pid_alive(p)]

    def leftovers(self):
        """Processes started by this cluster still alive: its daemons and
        anything that carries its SLURM_CONF (jobs and their children)."""
        found = set(self.daemon_pids())
        found.update(p for p in self.pids if pid_alive(p))
        found.update(processes_with_env("SLURM_CONF", str(self.conf)))
        return sorted(found)

    def stop(self, timeout=20):
        """Cancels every job, stops the daemons and munged, and removes
        the directory (unless keep). Returns the pids it had to SIGKILL
        (processes that outlived `scontrol shutdown`)."""
        killed = []
        if self.started:
            self.started = False
            self.pids += self.daemon_pids()
            if self.pids:
                self.run("scancel", "--full", "-u", "root", check=False)
                wait_until(lambda: not self.run(
                    "squeue", "-h", "-t", "R,CG", check=False).strip(),
                    timeout / 2, 0.2)
                self.run("scontrol", "shutdown", check=False)
                wait_until(lambda: not any(map(pid_alive, self.pids)),
                           timeout / 2)
            killed = self.leftovers()
            for pid in killed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_until(lambda: not self.leftovers(), 5)
        if self.munged:
            self.munged = False
            subprocess.run(["munged", "-s",
                            f"--socket={self.dir}/munge/munge.socket"],
                           capture_output=True, timeout=30)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return killed

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    # By hand: `python3 tests/slurm/cluster.py` starts a cluster, prints
    # the SLURM_CONF to use, and stops it at ^C.
    c = SlurmCluster(keep=False)
    t0 = time.monotonic()
    c.start()
    print(f"up in {time.monotonic() - t0:.1f} s:"
          f" export SLURM_CONF={c.conf}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        t0 = time.monotonic()
        left = c.stop()
        print(f"down in {time.monotonic() - t0:.1f} s;"
              f" killed {left or 'nothing'}")
