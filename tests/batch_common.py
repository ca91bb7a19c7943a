"""What the tests against a real batch system share: tests/slurm and
tests/gridengine. Their cluster.py (each a batch system on this one
machine) take the process and port helpers from here, and their
conftest.py the system tests' fixtures (tests/system/conftest.py) and
the session fixture that starts and stops the cluster.

Each cluster.py puts this directory on sys.path before it imports this
module, as the conftests put tests/system there for helpers.py.

Python standard library only (and pytest, for the fixtures)."""

import importlib.util
import os
import socket
import time
from pathlib import Path

SYSTEM = Path(__file__).resolve().parent / "system"


def free_ports(n, error=OSError):
    """A run of n consecutive TCP ports free on 127.0.0.1 now (Slurm's
    node ports are written as a range, [first-last]); raises error if
    200 tries found none."""
    for _ in range(200):
        # Below the kernel's ephemeral ports (32768 and up by default),
        # which a busy machine may hand out between this check and the
        # daemons' binding.
        base = 20000 + int.from_bytes(os.urandom(2), "little") % 12000
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise error(f"no run of {n} free ports found")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes: it holds no port and runs nothing.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
    except OSError:
        return False
    return state.split()[0] != "Z"


def wait_until(cond, timeout, interval=0.1):
    """Polls cond() until it is true or timeout seconds pass; returns its
    last value."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= end:
            return value
        time.sleep(interval)


def processes_with(entry, needle):
    """Pids of the live processes whose /proc/PID/ENTRY ("environ",
    "cmdline": NUL-separated) holds needle as one of its strings."""
    needle = needle.encode() + b"\0"
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            text = (d / entry).read_bytes() + b"\0"
        except OSError:
            continue
        if b"\0" + needle in b"\0" + text and pid_alive(int(d.name)):
            pids.append(int(d.name))
    return pids


def processes_with_env(name, value):
    """Pids of the live processes whose environment holds name=value."""
    return processes_with("environ", f"{name}={value}")


def system_conftest():
    """tests/system/conftest.py as a module of its own, for its fixtures
    (xylem_bin, secret_file, xylem), which a conftest takes as they are."""
    spec = importlib.util.spec_from_file_location(
        "xylem_system_conftest", SYSTEM / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cluster_session(check_available, make, error, *, skip, name, noun,
                    ready):
    """The body of a cluster's session fixture (`yield from` it): skips
    unless root (skip says why); fails with check_available()'s reason if
    the batch system is missing, or if make()'s cluster does not start
    (error: "NAME did not come up"); prints ready(c, seconds) once it is
    up; yields it; stops it, and fails if any of its processes outlived
    it ("processes outlived the NOUN")."""
    import pytest
    if os.geteuid() != 0:
        pytest.skip(skip)
    reason = check_available()
    if reason:
        pytest.fail(reason)
    c = make()
    t0 = time.monotonic()
    try:
        c.start()
    except error as e:
        pytest.fail(f"{name} did not come up: {e}")
    print(ready(c, time.monotonic() - t0))
    yield c
    left = c.stop()
    if left:
        pytest.fail(f"processes outlived the {noun} (killed): {left}")
