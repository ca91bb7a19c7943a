"""Done-callbacks off the manager's thread (executor.py).

The manager's loop thread sets the Futures of finished tasks; a Future's
done-callbacks would run right there, so that a slow callback would stall
scheduling for every task. A Future made by an Executor hands each of its
callbacks to a thread of the Executor's own instead, which runs them in
the order their Futures finished. A callback added to a Future already
done, or run because a user thread cancelled the Future, runs at once in
that thread, as concurrent.futures says.
"""

import logging
import queue
import threading

LOGGER = logging.getLogger("xylem")


class Callbacks:
    """The thread that runs done-callbacks, started with the first."""

    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = None
        self._stopped = False

    def wrap(self, fn, loop_thread):
        """fn as a done-callback that, when called on loop_thread() (the
        manager's thread ident), runs on this thread instead."""
        def callback(future):
            if threading.get_ident() == loop_thread():
                self._put(fn, future)
            else:
                _call(fn, future)
        return callback

    def on_thread(self):
        """True when the caller is this thread (a callback)."""
        t = self._thread
        return t is not None and t.ident == threading.get_ident()

    def _put(self, fn, future):
        with self._lock:
            if self._stopped:
                _call(fn, future)  # late: at once rather than never
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="xylem-callbacks", daemon=True)
                self._thread.start()
            self._queue.put((fn, future))

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            _call(*item)

    def stop(self, wait):
        """No more callbacks on this thread; with wait, returns once the
        ones queued have run (not when called from a callback)."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        if wait and thread.ident != threading.get_ident():
            thread.join()


def _call(fn, future):
    try:
        fn(future)
    except Exception:
        # As concurrent.futures does: logged, not raised.
        LOGGER.exception("exception calling callback for %r", future)
