"""Xylem for Python: run functions and commands on Xylem workers through a
concurrent.futures executor (docs/python.md).

    import xylem
    with xylem.Executor() as ex:          # a manager and a local worker per core
        print(ex.submit(pow, 2, 10).result())

The executor and the C extension load when first used, so that a library
process on a worker (python -m xylem.library) imports only what it needs
and can report a wrong interpreter clearly.

In a build directory, without installing: set XYLEM_BUILD_DIR to the
meson build directory and put this package's parent directory (python/)
on PYTHONPATH; the extension is then taken from $XYLEM_BUILD_DIR/python
and the xylem program from $XYLEM_BUILD_DIR/src/cli.
"""

import os as _os
import sys as _sys


def _check_interpreter():
    """In a library or runner process (started with XYLEM_PYTHON set to
    the manager's major.minor), exits with one clear line if this Python
    is another version, and with the status reserved for that,
    _calls.MISMATCH_STATUS (78), by which the executor knows it. It runs
    first, before anything a wrong version could fail to parse or import,
    so this file keeps to syntax that even Python 2 parses. The variable
    is then dropped, so that programs the call starts do not inherit the
    check."""
    want = _os.environ.pop("XYLEM_PYTHON", None)
    have = "%d.%d" % tuple(_sys.version_info[:2])
    if want and want != have:
        _sys.stderr.write(
            "xylem: interpreter mismatch: the manager runs Python %s but"
            " this worker started %s, which is Python %s; install Python %s"
            " on the worker or give the executor python=...\n"
            % (want, _sys.executable, have, want))
        _sys.stderr.flush()
        _sys.exit(78)


def _append_paths():
    """In a library or runner process in an environment, appends the
    program's own module directories (XYLEM_PYTHONPATH_AFTER, from the
    executor) to sys.path, after the environment's packages, where
    PYTHONPATH would have put them before. The variable is then dropped,
    as XYLEM_PYTHON is (the name is _calls.PATH_AFTER_ENV)."""
    after = _os.environ.pop("XYLEM_PYTHONPATH_AFTER", None)
    for p in (after or "").split(_os.pathsep):
        if p and p not in _sys.path:
            _sys.path.append(p)


_check_interpreter()
_append_paths()

from .errors import (InputMissing, InterpreterMismatch, LibraryCrashed,
                     ManagerFailed, PickleError, RemoteError,
                     RemoteTraceback, ResourcesExhausted, TaskFailed,
                     Unschedulable, WorkerFailed, XylemError)

# progress is eager: its module shares the function's name, and an import
# of the submodule (the lazy loading of Progress, say) would otherwise
# leave xylem.progress the module. It imports only sys, threading, time.
from .progress import Progress, progress  # noqa: E402

# The rest on first use too (PEP 562): a library process, or the
# endpoint's session server, starts without importing them (shutil,
# tarfile, subprocess, logging: some 50 ms of a cold start).
_LAZY = {"Environment": "environment", "File": "files", "Temp": "files",
         "MPIFunction": "mpi", "Pool": "pools", "ShellFunction": "shell",
         "ShellResult": "shell"}

__version__ = "0.1.0"

__all__ = [
    "Environment", "Executor", "File", "MPIFunction", "Pool", "ShellFunction",
    "ShellResult", "Temp", "XylemError",
    "TaskFailed", "LibraryCrashed", "InterpreterMismatch", "InputMissing",
    "ResourcesExhausted", "WorkerFailed", "ManagerFailed", "Unschedulable",
    "PickleError",
    "Progress", "progress",
    "RemoteError",
    "RemoteTraceback",
]

# In-tree use: the built extension lives in the build directory.
if _os.environ.get("XYLEM_BUILD_DIR"):
    __path__.append(_os.path.join(
        _os.path.abspath(_os.environ["XYLEM_BUILD_DIR"]), "python"))


def __getattr__(name):
    # Executor on first use (PEP 562): it needs the C extension.
    if name == "Executor":
        from .executor import Executor
        return Executor
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module("." + _LAZY[name], __name__),
                        name)
        globals()[name] = value
        return value
    raise AttributeError("module 'xylem' has no attribute %r" % name)
