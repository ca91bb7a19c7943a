"""Xylem as a Parsl executor (docs/python.md, "Parsl").

    import parsl
    from parsl.config import Config
    from xylem.parsl import XylemExecutor

    parsl.load(Config(executors=[XylemExecutor()]))   # local workers

XylemExecutor loads on first use (PEP 562), so that a worker's library
process, which imports only xylem.parsl._remote, does not import the
executor, Parsl's DataFlowKernel machinery or the C extension.
"""

__all__ = ["XylemExecutor", "XylemTaskFailure", "XylemResourcesExhausted",
           "XylemWorkerLost", "XylemLibraryCrashed", "XylemInputMissing",
           "XylemTimeout"]


def __getattr__(name):
    if name == "XylemExecutor":
        from .executor import XylemExecutor
        return XylemExecutor
    if name in __all__:
        from . import errors
        return getattr(errors, name)
    raise AttributeError("module 'xylem.parsl' has no attribute %r" % name)
