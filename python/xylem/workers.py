"""Local workers for an Executor: finding the ``xylem`` program and
running ``xylem worker`` processes on this machine (docs/python.md,
"Executor").
"""

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time


def find_xylem():
    """The path of the ``xylem`` program: $XYLEM_BIN; in-tree, the one in
    $XYLEM_BUILD_DIR; installed, the one in this interpreter's scripts
    directory (where pip puts it); else the first on PATH."""
    env = os.environ.get("XYLEM_BIN")
    if env:
        return env
    candidates = []
    build = os.environ.get("XYLEM_BUILD_DIR")
    if build:
        candidates.append(os.path.join(build, "src", "cli", "xylem"))
    candidates.append(os.path.join(sysconfig.get_path("scripts"), "xylem"))
    candidates.append(os.path.join(os.path.dirname(sys.executable), "xylem"))
    try:
        candidates.append(os.path.join(
            sysconfig.get_path("scripts", f"{os.name}_user"), "xylem"))
    except KeyError:
        pass
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    found = shutil.which("xylem")
    if found:
        return found
    raise FileNotFoundError(
        "cannot find the xylem program: install the package with pip,"
        " or set XYLEM_BIN (or XYLEM_BUILD_DIR for a build directory)")


def memory_mb():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") \
            // (1 << 20)
    except (ValueError, OSError):
        return 0


def gpu_count():
    """The GPUs a worker finds here by default: /dev/nvidiaN devices."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return 0
    return sum(1 for n in names
               if n.startswith("nvidia") and n[6:].isdigit())


def free_disk_mb(path):
    """Free space under path in MB (0: unknown), as a worker measures the
    disk it offers by default."""
    try:
        return shutil.disk_usage(path).free >> 20
    except OSError:
        return 0


class LocalWorkers:
    """N ``xylem worker`` processes connected to 127.0.0.1:port, each with
    its own cache directory under tmpdir, each offering `cores` cores and
    an equal share of the machine's memory.

    The attribute ``shape`` is what each offers, as it is told: a dict of
    cores, memory and disk (MB; 0: unknown, left to the worker, which
    then sets no limit if it cannot tell either) and gpus. Disk and GPUs
    are found as a worker would find them."""

    def __init__(self, n, port, secret_file, tmpdir, cores=1, tls_ca=None):
        self.procs = []
        binary = find_xylem()
        env = dict(os.environ)
        env.setdefault("XYLEM_LOG", "warn")
        share = memory_mb() // max(n, 1)
        self.shape = {"cores": cores, "memory": share,
                      "disk": free_disk_mb(tmpdir), "gpus": gpu_count()}
        for i in range(n):
            cache = os.path.join(tmpdir, f"worker-{i}")
            args = [binary, "worker", f"127.0.0.1:{port}",
                    "--secret-file", secret_file, "--cores", str(cores),
                    "--cache", cache]
            # Verify the manager with its CA (None: it runs without TLS).
            args += ["--tls-ca", tls_ca] if tls_ca else ["--no-tls"]
            # The shape given, not detected by each worker, so that the
            # executor knows it for certain.
            args += ["--gpus", str(self.shape["gpus"])]
            for k in ("memory", "disk"):
                if self.shape[k]:
                    args += [f"--{k}", str(self.shape[k])]
            # A session of their own: a ^C on the terminal reaches only
            # the program, which then stops them in order. They also exit
            # by themselves when the manager's connection closes.
            self.procs.append(subprocess.Popen(
                args, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True))

    def alive(self):
        return [p for p in self.procs if p.poll() is None]

    def signal(self, sig):
        """Sends sig to the workers still running."""
        for p in self.alive():
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass

    def stop(self, grace=5.0, term_wait=2.0):
        """Waits up to grace seconds for the workers to exit (after the
        manager told them to, or went away), then sends SIGTERM (a worker
        then kills its tasks, says BYE and cleans up), and after
        term_wait seconds more SIGKILL."""
        deadline = time.monotonic() + grace
        for sig, wait in ((None, grace), (signal.SIGTERM, term_wait),
                          (signal.SIGKILL, 5.0)):
            left = self.alive()
            if not left:
                return
            if sig is not None:
                self.signal(sig)
                deadline = time.monotonic() + wait
            for p in left:
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
