"""Hints that XylemExecutor adds to an app's own exception when the app
most likely failed for a file it did not declare: without shared_fs an
app runs in a sandbox that holds only its declared Files, which a
newcomer from Parsl's own executors does not expect (docs/python.md,
"Parsl"). The exception keeps its type; the hint is a note (add_note,
Python 3.11 and later), or part of an OSError's message before that.
"""

import os
import re

from parsl.app.errors import BashExitFailure

# What bash, and most programs, print for a path that is not there:
# "bash: line 1: ./tool.sh: No such file or directory".
NOT_FOUND = re.compile(r"([^\s:'\"]+): No such file or directory")
# How much of the end of a failed bash_app's stderr is searched.
TAIL = 4096

DECLARE = ("XylemExecutor runs each app in a sandbox on a worker, which"
           " holds only the Files that the task declares: declare it, as"
           " inputs=[File({path!r})] (outputs=[File(...)] for a file that"
           " the app writes), or, where the workers share this"
           " filesystem, run apps in place with"
           " XylemExecutor(shared_fs=True).")


def add(exc, declared, stream_paths=()):
    """Adds a hint to exc, an app's exception, if an undeclared file
    explains it. declared: the sandbox names of the task's Files;
    stream_paths: files holding the end of its stdout and stderr."""
    if isinstance(exc, FileNotFoundError):
        path = exc.filename
        if isinstance(path, str) and _undeclared(path, declared):
            _note(exc, _text(path))
    elif isinstance(exc, BashExitFailure):
        path = _missing_in(stream_paths)
        if path is not None and _undeclared(path, declared):
            _note(exc, f"{path!r}: no such file or directory in the"
                       " sandbox. " +
                       DECLARE.format(path=os.path.normpath(path)))
        elif exc.exitcode == 127:
            _note(exc, "Exit code 127: a command was not found. A program"
                       " named by a relative path (./tool.sh) is not in"
                       " the sandbox unless the task declares it. " +
                       DECLARE.format(path="tool.sh"))


def _undeclared(path, declared):
    """Whether path is one that the sandbox lacks for want of a
    declaration: relative and not declared, or absolute and here (so
    that only the worker lacks it)."""
    if os.path.isabs(path):
        return os.path.exists(path)
    return os.path.normpath(path) not in declared


def _text(path):
    if os.path.isabs(path):
        return (f"{path!r} exists on the submitting side but not on the"
                " worker. " + DECLARE.format(path=path))
    return f"{path!r} is not in the task's sandbox. " + \
        DECLARE.format(path=path)


def _missing_in(paths):
    """The first path that the ends of these files say is missing."""
    for p in paths:
        try:
            with open(p, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        m = NOT_FOUND.search(text)
        if m:
            return m.group(1)
    return None


def _note(exc, text):
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    elif isinstance(exc, OSError) and exc.strerror:
        exc.strerror = f"{exc.strerror} ({text})"
