"""xylem.ShellFunction: a command line template that runs as a command
task in a sandbox, not through the Python library (docs/python.md,
"Shell functions").

``ex.submit(ShellFunction("sort {src} > out.txt", walltime=60), src="a")``
formats the template with the call's arguments (str.format: arguments are
not quoted; use shlex.quote for values that may hold spaces or quotes) and
runs it with /bin/sh. The Future's value is a ShellResult: the exit code
and the tails of stdout and stderr. A command that runs past its walltime
is killed and returns exit code 124, as timeout(1) does.
"""

import collections
import hashlib
import os
import shlex
import signal
import subprocess
import uuid

ShellResult = collections.namedtuple("ShellResult",
                                     "returncode stdout stderr")
ShellResult.__doc__ = """What a ShellFunction call returns: the exit code
(124 if the walltime ran out) and the last bytes of stdout and stderr,
decoded as UTF-8 with bad bytes replaced."""

EXIT_TIMEOUT = 124
# Seconds between the polite SIGTERM at the walltime and SIGKILL.
KILL_AFTER = 2
# The manager's own time limit stays this far behind the walltime, as a
# backstop should the wrapper itself hang.
BACKSTOP = 30


class ShellFunction:
    """A shell command template; see the module's description.

    walltime: seconds the command may run (None: no limit).
    tail: how many bytes of the end of stdout and of stderr to return.
    check: a non-zero exit fails the Future with TaskFailed (its output
    the tails of stderr and stdout) instead of returning a ShellResult,
    as subprocess.run(check=True) raises.
    """

    def __init__(self, template, walltime=None, tail=16384, check=False):
        if not isinstance(template, str):
            raise TypeError("the template must be a str")
        if walltime is not None and walltime <= 0:
            raise ValueError("walltime must be positive")
        if not 0 <= tail <= 256 * 1024:
            raise ValueError("tail must be from 0 to 262144 bytes")
        self.template = template
        self.walltime = walltime
        self.tail = tail
        self.check = bool(check)
        self.__name__ = template.split(None, 1)[0] if template.strip() \
            else "shell"

    def __repr__(self):
        return f"xylem.ShellFunction({self.template!r}," \
               f" walltime={self.walltime!r})"

    def format(self, *args, **kwargs):
        """The command line for these arguments."""
        return self.template.format(*args, **kwargs)

    def wrapper(self, command, stable=False):
        """The sh script that runs command with its walltime, then prints
        a header line (a marker, the exit code and both sizes) and the two
        tails. The marker is fresh for each call, so that nothing the
        command prints can pass for it; stable (an Executor with a
        journal): it is a digest of the command instead, so that the same
        call is the same task in a later run (a command cannot print the
        digest of itself by chance)."""
        if stable:
            marker = "XYSH-" + hashlib.sha256(
                b"xylem shell marker\0" + command.encode()).hexdigest()[:32]
        else:
            marker = "XYSH-" + uuid.uuid4().hex
        run = f"/bin/sh -c {shlex.quote(command)}"
        if self.walltime is not None:
            run = f"timeout -k {KILL_AFTER} {self.walltime:g} {run}"
        return (f"{run} </dev/null >.xylem-stdout 2>.xylem-stderr; rc=$?;"
                f" printf '%s %d %d %d\\n' {marker} $rc"
                f" $(wc -c <.xylem-stdout) $(wc -c <.xylem-stderr);"
                f" tail -c {self.tail} .xylem-stdout;"
                f" tail -c {self.tail} .xylem-stderr;"
                f" rm -f .xylem-stdout .xylem-stderr; exit 0"), marker

    def time_limit(self):
        """The manager's limit for the wrapper task, or 0 for none."""
        if self.walltime is None:
            return 0
        return self.walltime + KILL_AFTER + BACKSTOP

    def parse(self, output, marker):
        """The ShellResult from the wrapper's output, or None if the
        output is not what the wrapper prints."""
        start = output.rfind(marker.encode())
        if start < 0:
            return None
        end = output.find(b"\n", start)
        try:
            _, rc, n_out, n_err = output[start:end].split()
            rc, n_out, n_err = int(rc), int(n_out), int(n_err)
        except ValueError:
            return None
        n_out, n_err = min(n_out, self.tail), min(n_err, self.tail)
        body = output[end + 1:]
        if len(body) < n_out + n_err:
            return None
        return ShellResult(rc, _text(body[:n_out]),
                           _text(body[n_out:n_out + n_err]))

    def __call__(self, *args, **kwargs):
        """Runs the command here, in the current directory, without
        Xylem: the same formatting, walltime and result."""
        p = subprocess.Popen(["/bin/sh", "-c", self.format(*args, **kwargs)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = p.communicate(timeout=self.walltime)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            rc = EXIT_TIMEOUT
        tail = self.tail
        return ShellResult(rc, _text(out[-tail:] if tail else b""),
                           _text(err[-tail:] if tail else b""))


def _text(b):
    return bytes(b).decode("utf-8", "replace")
