"""Functions for test_task_users.py, in a module of their own so that
library instances and runners under the task accounts import them by
name (the test directory is on their PYTHONPATH)."""

import os
import time


def _error(fn, *args):
    """fn(*args), or the name of the OSError it raised."""
    try:
        fn(*args)
        return "done"
    except OSError as e:
        return type(e).__name__


def _meet(meeting, mine, theirs, wait):
    """Leaves the file `mine` in meeting (its text what the other call
    needs), then waits for the other's `theirs`, and returns its text
    (None if it never came)."""
    part = os.path.join(meeting, mine + ".part")
    with open(part, "w") as f:
        f.write(os.getcwd())
    os.rename(part, os.path.join(meeting, mine))
    path = os.path.join(meeting, theirs)
    end = time.monotonic() + wait
    while not os.path.exists(path):
        if time.monotonic() > end:
            return None
        time.sleep(0.05)
    with open(path) as f:
        return f.read()


def spy(meeting, i, wait=60):
    """Call i of two running at once: says who it runs as and what its
    sandboxes are, leaves a secret in its sandbox, tells the other call
    where that is (through the shared directory meeting), then tries to
    read the other's secret and to list the directory of sandboxes. Both
    stay until both have tried, so that each sandbox exists while the
    other tries it."""
    box = os.getcwd()
    st = os.stat(box)
    lib = os.environ.get("XYLEM_SANDBOX", box)
    lst = os.stat(lib)
    with open("secret", "w") as f:
        f.write(f"SECRET-{i}")
    other = _meet(meeting, str(i), str(1 - i), wait)
    out = {"uid": os.getuid(), "euid": os.geteuid(), "box": box,
           "box_uid": st.st_uid, "box_mode": st.st_mode & 0o7777,
           "lib_uid": lst.st_uid, "lib_mode": lst.st_mode & 0o7777,
           "other": other}
    if other is None:
        return out
    try:
        with open(os.path.join(other, "secret")) as f:
            out["read"] = f.read()
    except OSError as e:
        out["read"] = type(e).__name__
    out["list"] = _error(os.listdir, os.path.dirname(box))
    _meet(meeting, f"{i}.done", f"{1 - i}.done", wait)
    return out


def poke(name):
    """Tries to write the input file name and to chmod it; says what
    happened, and what it reads there afterwards."""
    def append():
        with open(name, "a") as f:
            f.write("EVIL\n")
    out = {"uid": os.getuid(), "write": _error(append),
           "chmod": _error(os.chmod, name, 0o644)}
    with open(name) as f:
        out["text"] = f.read()
    return out


def read_text(name):
    with open(name) as f:
        return os.getuid(), f.read()


def leave_behind(pidfile):
    """Starts a process in a session of its own that outlives the call,
    and writes its pid to pidfile."""
    import subprocess
    p = subprocess.Popen(["sleep", "600"], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    with open(pidfile, "w") as f:
        f.write(str(p.pid))
    return p.pid


def plant_later(meeting, patience=30.0):
    """Leaves a thread in the library instance that, once the call has
    returned and its sandbox was taken back (root's again: no fixed
    sleep to race a loaded machine), or after patience seconds if it
    never is, tries to put a file in the call's sandbox (as anything
    left under the account could), and says in meeting/planted how it
    went; and sets a default ACL on the sandbox that names this account.
    Returns the sandbox's path."""
    import threading
    box = os.getcwd()

    def later():
        end = time.monotonic() + patience
        while time.monotonic() < end:
            try:
                if os.stat(box).st_uid == 0:
                    break
            except OSError:
                break
            time.sleep(0.02)
        try:
            with open(os.path.join(box, "planted"), "w") as f:
                f.write("left by an earlier call\n")
            how = "planted"
        except OSError as e:
            how = type(e).__name__
        part = os.path.join(meeting, "planted.part")
        with open(part, "w") as f:
            f.write(how)
        os.rename(part, os.path.join(meeting, "planted"))

    threading.Thread(target=later, daemon=True).start()
    # A default ACL on the sandbox, which the call owns: new files in it
    # would give this account a share of them.
    import struct
    entries = [(0x01, 7, 0xffffffff), (0x02, 7, os.getuid()),
               (0x04, 5, 0xffffffff), (0x10, 7, 0xffffffff),
               (0x20, 0, 0xffffffff)]
    os.setxattr(box, "system.posix_acl_default", struct.pack("<I", 2) +
                b"".join(struct.pack("<HHI", *e) for e in entries))
    return box


def listing():
    return os.getcwd(), sorted(os.listdir("."))
