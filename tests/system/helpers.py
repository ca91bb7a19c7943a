"""Helpers for Xylem's system tests: workflow files, processes whose
output is read while they run, and waits that always end."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Under the sanitizers (scripts/test.sh sets XYLEM_SANITIZED) everything is
# several times slower: every timeout stretches by this factor.
SLOW = 4 if os.environ.get("XYLEM_SANITIZED") else 1

# One test CA for the session's managers and workers (tests/tls_ca.py).
sys.path.insert(0, str(REPO / "tests"))
import tls_ca  # noqa: E402

tls_ca.setup()


def find_binary():
    env = os.environ.get("XYLEM_BIN")
    candidates = [Path(env)] if env else [REPO / "build/src/cli/xylem"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c.resolve())
    return None


def write_workflow(path, tasks, name=None):
    """Writes a workflow file; tasks is a list of task dicts."""
    doc = {"tasks": tasks}
    if name:
        doc["name"] = name
    Path(path).write_text(json.dumps(doc, indent=1))
    return str(path)


def task(tid, command, inputs=(), outputs=(), **extra):
    """A task dict; inputs and outputs are (path, as) pairs."""
    t = {"id": tid, "command": command}
    if inputs:
        t["inputs"] = [{"path": str(p), "as": a} for p, a in inputs]
    if outputs:
        t["outputs"] = [{"path": str(p), "as": a} for p, a in outputs]
    t.update(extra)
    return t


def browser_missing(why):
    """A browser test's tool is missing: a failure (scripts/deps.sh
    installs Chromium, its driver and Selenium for the tests), or a skip
    where XYLEM_ALLOW_NO_BROWSER=1 says a machine may lack them (never
    set by scripts/test.sh)."""
    if os.environ.get("XYLEM_ALLOW_NO_BROWSER") == "1":
        pytest.skip(why)
    pytest.fail(f"{why} (scripts/deps.sh test installs it; "
                "XYLEM_ALLOW_NO_BROWSER=1 skips instead)")


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Polls cond() until it is true; fails the test after timeout."""
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Proc:
    """A started process whose stderr (and stdout) are read by a thread into
    a list of lines, so that a test can wait for a line while it runs."""

    def __init__(self, args, env=None, cwd=None):
        self.args = args
        self.p = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True, text=True, errors="replace")
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.lines.append(line)

    @property
    def output(self):
        with self.lock:
            return "".join(self.lines)

    @property
    def pid(self):
        return self.p.pid

    def wait_line(self, pattern, timeout):
        """Waits until a line matches the regex; returns the match."""
        rx = re.compile(pattern)

        def found():
            with self.lock:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
            if self.p.poll() is not None:
                self.reader.join(1)
                with self.lock:
                    for line in self.lines:
                        m = rx.search(line)
                        if m:
                            return m
                pytest.fail(f"{self.args[1]} exited ({self.p.returncode})"
                            f" before printing /{pattern}/:\n{self.output}")
            return None
        return wait_for(found, timeout, what=f"/{pattern}/ from {self.args[1]}")

    def wait(self, timeout):
        """Waits for the exit; returns the exit status."""
        try:
            rc = self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            kill_group(self.p)
            self.p.wait(5)
            pytest.fail(f"{' '.join(self.args[1:3])} did not exit within"
                        f" {timeout} s:\n{self.output}")
        self.drain()
        return rc

    def drain(self):
        """Reads what is left of the output: until the end, or until it
        has been quiet for 0.2 s (local workers that outlive a run on a
        journal keep its output open), or 5 s."""
        end = time.monotonic() + 5
        seen = -1
        while self.reader.is_alive() and time.monotonic() < end:
            with self.lock:
                now = len(self.lines)
            if now == seen:
                break
            seen = now
            self.reader.join(0.2)

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def kill(self):
        if self.p.poll() is None:
            kill_group(self.p, signal.SIGTERM)
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                kill_group(self.p)
                self.p.wait(5)
        # Processes that left our group (local workers) die with their
        # parent (PR_SET_PDEATHSIG); nothing else to do here.


class Result:
    def __init__(self, returncode, output):
        self.returncode = returncode
        self.output = output


class Xylem:
    """Starts xylem commands for one test and cleans up after it."""

    def __init__(self, binary, tmp_path):
        self.bin = binary
        self.tmp = tmp_path
        self.procs = []
        self.env = dict(os.environ)
        self.env.setdefault("TMPDIR", str(tmp_path))

    def run(self, *args, timeout=120, env=None, cwd=None):
        """Runs xylem to completion (in cwd, if given); returns a Result
        with .returncode and .output (stdout and stderr together)."""
        p = Proc([self.bin, *map(str, args)], env=env or self.env, cwd=cwd)
        self.procs.append(p)
        rc = p.wait(timeout)
        return Result(rc, p.output)

    def start(self, *args, env=None):
        p = Proc([self.bin, *map(str, args)], env=env or self.env)
        self.procs.append(p)
        return p

    def manager(self, workflow, secret_file, *extra, port=0):
        """`xylem run WF --workers 0`: a manager waiting for external
        workers. Returns (proc, port)."""
        p = self.start("run", workflow, "--workers", "0", "--port", port,
                       "--secret-file", secret_file, *extra)
        m = p.wait_line(r"waiting for workers on port (\d+)", 30)
        return p, int(m.group(1))

    def worker(self, port, secret_file, cores=1, *extra):
        return self.start("worker", f"127.0.0.1:{port}", "--secret-file",
                          secret_file, "--cores", cores, *extra)

    def cleanup(self):
        for p in reversed(self.procs):
            p.kill()
        # Local workers of a run on a journal outlive it (their lease):
        # those whose cache is under this test's directory go too.
        for pid in leftovers(self.tmp):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def leftovers(tmp):
    """Pids of processes whose command line names a path under tmp."""
    mark = str(tmp).encode()
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if mark in (d / "cmdline").read_bytes():
                pids.append(int(d.name))
        except OSError:
            pass
    return pids
