"""A progress view for a set of futures (docs/python.md, "Progress"):

    futures = [ex.submit(f, x) for x in xs]
    xylem.progress(futures)          # returns once all are done

In a terminal it is one line rewritten in place (on stderr); in Jupyter
(IPython with a kernel) a display that updates in the cell; anywhere else
(a log file, a pipe) a plain line every few seconds and one at the end.
Any concurrent.futures.Future works, not only Xylem's.
"""

import sys
import threading
import time

_TTY_INTERVAL = 0.1
_LOG_INTERVAL = 5.0
_BAR = 24


def _in_jupyter():
    """The IPython display function if this runs under a Jupyter kernel,
    else None (a plain IPython terminal gets the terminal line)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:
        return None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return None
    try:
        from IPython.display import display
    except Exception:
        return None
    return display


class Progress:
    """Counts a set of futures as they complete and shows the counts.
    Made by progress(); update() redraws, close() draws the last state."""

    def __init__(self, futures, desc=None, file=None):
        self.futures = list(futures)
        self.total = len(self.futures)
        self.desc = desc
        self.done = 0
        self.failed = 0
        self.cancelled = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._last = 0.0
        self._file = file if file is not None else sys.stderr
        self._display = _in_jupyter()
        self._handle = None
        self._shown = False
        try:
            self._tty = self._display is None and self._file.isatty()
        except Exception:
            self._tty = False
        self._all_done = threading.Event()
        if not self.futures:
            self._all_done.set()
        for f in self.futures:
            f.add_done_callback(self._on_done)

    def _on_done(self, f):
        with self._lock:
            self.done += 1
            if f.cancelled():
                self.cancelled += 1
            elif f.exception() is not None:
                self.failed += 1
            last = self.done == self.total
        if last:
            self._all_done.set()
        self.update()

    def text(self):
        """The counts as one line."""
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        line = (f"{head}{self.done}/{self.total} done, {self.failed} failed"
                f", {rate:.1f}/s, {elapsed:.1f} s")
        if self.cancelled:
            line += f", {self.cancelled} cancelled"
        return line

    def _bar(self):
        n = _BAR * self.done // self.total if self.total else _BAR
        return "[" + "#" * n + "." * (_BAR - n) + "] "

    def update(self, force=False):
        """Redraws if enough time has passed (or always with force)."""
        now = time.monotonic()
        with self._lock:
            interval = _LOG_INTERVAL if not (self._tty or self._display) \
                else _TTY_INTERVAL
            if not force and now - self._last < interval:
                return
            self._last = now
            text = self.text()
            if self._display is not None:
                self._show_jupyter(text)
            elif self._tty:
                self._file.write("\r" + self._bar() + text + "\033[K")
                self._file.flush()
                self._shown = True
            elif force or now - self._start >= _LOG_INTERVAL:
                self._file.write("progress: " + text + "\n")
                self._file.flush()

    def _show_jupyter(self, text):
        from IPython.display import HTML
        frac = self.done / self.total if self.total else 1.0
        html = HTML(f'<div><progress value="{frac:.3f}" max="1" '
                    f'style="width:20em"></progress> '
                    f'<span>{_escape(text)}</span></div>')
        if self._handle is None:
            self._handle = self._display(html, display_id=True)
        else:
            self._handle.update(html)

    def wait(self, timeout=None):
        """Redraws until every future is done (or timeout seconds
        passed); returns True if all are done."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._all_done.is_set():
            step = _TTY_INTERVAL if (self._tty or self._display) else 0.5
            if end is not None:
                step = min(step, end - time.monotonic())
                if step <= 0:
                    break
            self._all_done.wait(step)
            self.update()
        return self._all_done.is_set()

    def close(self):
        """Draws the final counts (and ends the terminal line)."""
        self.update(force=True)
        if self._tty and self._shown:
            self._file.write("\n")
            self._file.flush()


def _escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def progress(futures, *, desc=None, wait=True, file=None):
    """Shows the progress of futures. With wait (the default), returns the
    list of futures once all are done (an exception in one is not raised:
    read it from its future). With wait=False, returns the Progress at
    once; it updates as futures complete, and close() ends it."""
    p = Progress(futures, desc=desc, file=file)
    p.update(force=p._tty or p._display is not None)
    if not wait:
        return p
    try:
        p.wait()
    finally:
        p.close()
    return p.futures
