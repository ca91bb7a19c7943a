"""What a Python call printed, shown to the program that submitted it,
and the names the history gives calls (docs/python.md, "What a function
prints"; docs/history.md).

A call's reply carries the tail of what it wrote to sys.stdout and
sys.stderr (_calls.py). The Executor's ``call_output`` option says where
that goes once its Future completes:

    "terminal"  the caller's sys.stdout and sys.stderr, as written
    "prefix"    the same, each line led by "[TAG] " (the call's tag)
    a path     a directory: one file per call, TAG-N.log, N counting
    None        nowhere (it stays in the worker's library log only)
"""

import functools
import itertools
import os
import sys
import threading

_MODES = ("terminal", "prefix")
_counter = itertools.count(1)
_lock = threading.Lock()


def check(mode):
    """mode, checked; a directory is made if missing and returned
    absolute."""
    if mode is None or mode in _MODES:
        return mode
    if isinstance(mode, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(mode))
        os.makedirs(path, exist_ok=True)
        return path
    raise ValueError(f"call_output is 'terminal', 'prefix', a directory or"
                     f" None, not {mode!r}")


def default_tag(fn):
    """The tag a call gets when none is given: the function's qualified
    name (module.qualname; qualname alone for __main__), a
    ShellFunction's or CWLApp's name."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "name", None)
    if isinstance(name, str) and name and not callable(name):
        return name
    qual = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    mod = getattr(fn, "__module__", None)
    if mod and mod not in ("__main__", "builtins"):
        return f"{mod}.{qual}"
    return qual


def _safe(tag):
    return "".join(c if c.isalnum() or c in "._-" else "_"
                   for c in tag or "call")[:100]


def show(mode, tag, printed):
    """Sends printed, (stdout_text, stderr_text), where mode says."""
    out, err = printed
    if mode is None or not (out or err):
        return
    if mode == "terminal":
        with _lock:
            if out:
                sys.stdout.write(out)
                sys.stdout.flush()
            if err:
                sys.stderr.write(err)
                sys.stderr.flush()
        return
    if mode == "prefix":
        lead = f"[{tag}] "
        with _lock:
            for text, stream in ((out, sys.stdout), (err, sys.stderr)):
                if text:
                    stream.write("".join(lead + line for line in
                                         text.splitlines(True)))
                    if not text.endswith("\n"):
                        stream.write("\n")
                    stream.flush()
        return
    path = os.path.join(mode, f"{_safe(tag)}-{next(_counter)}.log")
    with open(path, "w") as f:
        f.write(out)
        if err:
            f.write(("" if not out or out.endswith("\n") else "\n") +
                    "--- stderr ---\n" + err)
