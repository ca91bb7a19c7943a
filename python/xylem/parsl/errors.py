"""The exceptions that XylemExecutor sets on a Parsl task's future when
Xylem itself, not the app, failed it. All are Parsl ExecutorErrors (the
DataFlowKernel counts them as a failed try, retries the task if
Config(retries=...) allows, and a retry_handler can tell them apart); the
original xylem exception (xylem.TaskFailed and its subclasses, with the
worker's output) is ``xylem_error`` and ``__cause__``."""

from parsl.app.errors import AppTimeout
from parsl.executors.errors import ExecutorError


class XylemTaskFailure(ExecutorError):
    """Xylem could not run the task to completion (base class)."""

    def __init__(self, executor, reason, xylem_error=None):
        super().__init__(executor, reason)
        self.xylem_error = xylem_error


class XylemResourcesExhausted(XylemTaskFailure):
    """The task went over its memory or disk (parsl_resource_specification)
    and was killed."""


class XylemTimeout(XylemResourcesExhausted, AppTimeout):
    """The task ran past its walltime (resource specification "walltime")
    and was killed."""


class XylemWorkerLost(XylemTaskFailure):
    """The task lost its worker, or failed on a worker's own side (an input
    it could not fetch or store), too many times (Xylem runs a task again
    by itself, up to 10 times, before giving up)."""


class XylemLibraryCrashed(XylemTaskFailure):
    """The warm Python process running the task died during it (os._exit,
    a signal, a crash of the interpreter)."""


class XylemInputMissing(XylemTaskFailure):
    """A declared input File does not exist on the submitting side."""
