"""Functions the tests send to workers. They live in a module of their own
(pickled by reference, imported by the library) that imports only the
standard library, so that a library instance starts quickly."""

import os
import sys
import threading
import time
import uuid

# Set once per import: a module imported again would show a new value.
LOAD_ID = uuid.uuid4().hex
CALLS = 0


def count():
    """(pid, LOAD_ID, calls so far in this process)."""
    global CALLS
    CALLS += 1
    return os.getpid(), LOAD_ID, CALLS


def getpid():
    return os.getpid()


def add(a, b=0, *, scale=1):
    return (a + b) * scale


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def fail(message):
    return nested_fail(message)


def nested_fail(message):
    raise ValueError(message)


class Unpicklable(Exception):
    """An exception that carries a lock, so that it cannot be pickled."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable(message):
    raise Unpicklable(message)


def return_lock():
    return threading.Lock()


def crash(status=3, line="about to crash"):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    os._exit(status)


def exit_with(status):
    sys.exit(status)


def getenv(name):
    return os.environ.get(name)


def cwd_files():
    return sorted(os.listdir("."))


def litter(tag):
    """What the call finds in its working directory, after which it
    leaves a file and a directory there."""
    found = sorted(os.listdir("."))
    with open("left-" + tag, "w") as f:
        f.write(tag)
    os.mkdir("dir-" + tag)
    return found


def upper_file(src, dst):
    """Reads src in the sandbox and writes it upper-cased to dst."""
    with open(src) as f:
        text = f.read()
    with open(dst, "w") as f:
        f.write(text.upper())
    return len(text)


def nbytes(data):
    return len(data)


def make_bytes(n):
    return b"x" * n


def once_then_value(marker, seconds, value):
    """The first attempt writes its pid to marker and sleeps; a later
    attempt (after its worker was killed) returns at once."""
    if os.path.exists(marker):
        return value
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(marker + ".tmp", marker)
    time.sleep(seconds)
    return "first attempt"


def crash_once(marker, value):
    """Kills its process the first time; returns value the next."""
    if os.path.exists(marker):
        return value
    open(marker, "w").close()
    os._exit(5)


def interval(seconds):
    """(pid, start, end) of a call that sleeps for seconds."""
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


def clobber(name):
    """Writes over an input file in the sandbox (made writable first, as
    a task of the worker's own user could): what no call may do."""
    os.chmod(name, 0o644)
    with open(name, "w") as f:
        f.write("EVIL\n")
    return "written"


def read_text(name):
    with open(name) as f:
        return f.read()


def fail_at(x, bad):
    """x, or ValueError if x == bad (batched calls: the right item)."""
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def square(x):
    return x * x
