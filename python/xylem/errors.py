"""The exceptions a Future of the Xylem executor can carry (docs/python.md,
"Errors").

An exception that the user's function raised reaches the Future as itself,
with its original type and message, and with ``__cause__`` set to a
:class:`RemoteTraceback` that holds the traceback text from the worker.
Failures of Xylem's own making (a library that crashed, an input that does
not exist, a time limit, a lost worker) are :class:`TaskFailed`
subclasses carrying the manager's reason and the process's output.
"""


class XylemError(Exception):
    """Base class of the exceptions that Xylem raises itself."""


class TaskFailed(XylemError):
    """A task or call failed for a reason outside the function's own code.

    Attributes: ``reason`` (the manager's or library's one-line reason),
    ``output`` (the tail of the process's stdout and stderr, as text),
    ``exit_code``, ``worker`` (the name of the worker that ran it last, or
    "") and ``result`` (the manager's result name, e.g. "input missing").
    """

    def __init__(self, reason, output="", exit_code=None, worker="",
                 result=""):
        super().__init__(reason)
        self.reason = reason
        self.output = output
        self.exit_code = exit_code
        self.worker = worker
        self.result = result

    def __str__(self):
        text = self.reason
        if self.worker:
            text += f" (on worker {self.worker})"
        tail = self.output.strip()
        if tail and tail not in self.reason:
            # The last lines are where a crash explains itself.
            lines = tail.splitlines()[-10:]
            text += "\n  output:\n" + "\n".join("    " + ln for ln in lines)
        return text

    def __reduce__(self):
        return (type(self), (self.reason, self.output, self.exit_code,
                             self.worker, self.result))


class LibraryCrashed(TaskFailed):
    """The warm library process serving the call exited during it (the
    function called os._exit, was killed, or crashed the interpreter), or
    before it was ready. The worker starts a new instance for later calls."""


class InterpreterMismatch(LibraryCrashed):
    """The worker's Python is not the major.minor version the manager runs,
    so the library (or the fresh-mode runner) refused to start."""


class InputMissing(TaskFailed):
    """An input file could not be found or made."""


class ResourcesExhausted(TaskFailed):
    """The task went over its time, memory or disk limit and was killed."""


class Unschedulable(TaskFailed):
    """The task asks for more cores, GPUs, memory or disk than any of the
    executor's pools' workers has (xylem.Pool), so it could never run."""


class WorkerFailed(TaskFailed):
    """The task lost its worker, or failed on a worker's own side (an
    input it could not fetch or store), too many times."""


class ManagerFailed(TaskFailed):
    """The manager could not store the task's result (a directory it
    cannot make, its own disk full); running the task again would not
    help."""


class PickleError(XylemError):
    """A function, its arguments or its result could not be pickled.

    Raised by ``submit`` for the function and arguments; set on the Future
    (as the cause chain shows) for a result that could not be pickled."""


class RemoteError(Exception):
    """Stands in for an exception raised on a worker that could not be sent
    back as itself (it could not be pickled or unpickled). ``type_name`` is
    the original exception's qualified type name."""

    def __init__(self, type_name, message):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self):
        return (type(self), (self.type_name, self.message))


class RemoteTraceback(Exception):
    """Set as ``__cause__`` of an exception that came back from a worker;
    its text is the traceback there, as concurrent.futures.process does."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb
