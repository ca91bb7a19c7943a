"""How an Executor meets Ctrl-C and SIGTERM (docs/python.md, "Interrupts").

Python's default SIGTERM kills the process at once, leaving the
executor's temporary directories (with the secret) and its workers'
calls behind. While an Executor made in the main thread is alive, and
SIGTERM had its default action when it was made, SIGTERM instead raises
SystemExit(143) in the main thread, so that ``with`` blocks and the
interpreter's exit shut the executors down; the default comes back when
the last of them closes.

While an executor shuts down after an interrupt, a second SIGINT or
SIGTERM hurries it: it stops waiting for its local workers to exit
(they are told to stop, and killed if they take longer than a moment).
Used by executor.py, which keeps the executors' set.
"""

import contextlib
import signal
import sys
import threading

# The exit status that SIGTERM gives (as a shell reports a process
# killed by it).
TERM_STATUS = 128 + signal.SIGTERM

# Whether SIGTERM arrived through the handler below: the interpreter's
# exit then shuts the executors down at once, as for Ctrl-C.
_state = {"terminated": False, "executors": None}


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _on_sigterm(signum, frame):
    executors = _state["executors"]
    if not executors:
        # No executor left to clean up: the default action, as if this
        # handler had never been installed.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)
        return
    if _state["terminated"]:
        # A second SIGTERM during the cleanup that the first started.
        for ex in list(executors):
            ex._hurry()
        return
    _state["terminated"] = True
    raise SystemExit(TERM_STATUS)


def watch_sigterm(executors):
    """Installs the SIGTERM handler if this is the main thread and SIGTERM
    has its default action; executors is the live set it serves."""
    _state["executors"] = executors
    if not _in_main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def unwatch_sigterm():
    """Restores SIGTERM's default action once no executor is left, if the
    handler is still ours (from another thread, the handler itself does
    so when SIGTERM comes)."""
    if _state["executors"]:
        return
    # A SIGTERM handled is forgotten with the executors it ended: a
    # program that caught its SystemExit and made a new Executor gets a
    # SIGTERM of its own again, and exits wait again.
    _state["terminated"] = False
    if not _in_main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def interrupted():
    """True if the program is ending on an interrupt: a Ctrl-C that
    nothing caught (the interpreter keeps it as sys.last_value) or a
    SIGTERM that the handler above turned into SystemExit."""
    last = getattr(sys, "last_value", None)
    return _state["terminated"] or isinstance(last, KeyboardInterrupt)


@contextlib.contextmanager
def hurried_by_signals(executor):
    """Within it, in the main thread, SIGINT and SIGTERM call
    executor._hurry() instead of raising: the cleanup of an interrupted
    executor goes on, faster, and the exception already in flight ends
    the program when it is done."""
    if not _in_main_thread():
        yield
        return
    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig,
                                       lambda s, f: executor._hurry())
        yield
    finally:
        for sig, handler in saved.items():
            # None: a handler set outside Python, which cannot be put
            # back from here.
            signal.signal(sig, signal.SIG_DFL if handler is None
                          else handler)
        # The close may have found no executor left while this one's
        # handlers were in place.
        unwatch_sigterm()
