"""Batched calls: Executor.map in chunks, and bursts of submits sent
together (docs/python.md, "Batched calls"). Pairs with executor.py, whose
tables (_pending, _keys) and encoders it uses, and with _calls.py, which
defines the chunk's payload and reply and runs a chunk in the library.

A chunk is one task: one TASK message from the manager to a worker, one
frame from the worker to a warm library instance, one reply back, one
result to the executor. So every hop carries one message per chunk, not
one per call, and the chunk's results come back together when it ends,
chunk by chunk as chunks end.

Chunk sizes follow the measured cost of a call: the library times each
chunk's calls, and the next chunks of that function aim at TARGET_S
seconds each. Before any measurement, a map's chunks hold one call (the
first that returns measures the function); a burst's batches start at
two calls and double.

Pools. With pools (the scaler sizes them from the queued tasks), a
batch or a chunk tells the manager how many calls it carries (submit's
calls=), and the scaler counts it as that many one-core tasks, so
batching never changes how many workers a burst asks for. And since only
a measured function can be batched without risk of queueing slow calls
behind each other on the first worker to come, while the others start
to find nothing, a burst's calls of a function not yet measured each go
alone, as a batch of one (which measures it); from the first
measurement on, batches aim at TARGET_S each, as without pools.
"""

import collections
import concurrent.futures as cf
import functools
import itertools
import os
import threading
import time

from . import _calls

# What a chunk should take on its worker: long enough that a message's
# cost (some tens of microseconds on each hop) is small beside it, short
# enough that results stream back and the load spreads.
TARGET_S = 0.010
# The most calls in a chunk (and in a batch of submits): bounds the
# memory held per chunk on every side.
CHUNK_MAX = 4096
BURST_MAX = 256


def _resources_plain(opts):
    """True if opts ask for nothing a batch could not give each call: the
    default shape, no files, no retries or time limit of its own."""
    return (opts["cores"] <= 1 and not opts["memory"] and not opts["disk"]
            and not opts["gpus"] and not opts["inputs"]
            and not opts["outputs"] and not opts["retries"]
            and not opts["time_limit"])


class _Queued:
    """A submit waiting for the flush, with what it was given and what
    the submitting thread worked out (its function's pickle or
    reference, its library)."""

    __slots__ = ("key", "pending", "fn", "digest", "fn_bytes", "ref",
                 "library", "args", "kwargs", "opts")

    def __init__(self, *values):
        for k, v in zip(self.__slots__, values):
            setattr(self, k, v)


class Batching:
    """An executor's batching state: the measured cost of each function's
    calls, and the burst of submits waiting for the manager's thread."""

    def __init__(self, ex, submits=True):
        self.ex = ex
        # Coalesce bursts of submit(); XYLEM_NO_BURSTS=1 turns it off
        # (for benchmarks: bench/parsl_perf_ab.sh).
        self.submits = submits and os.environ.get("XYLEM_NO_BURSTS") != "1"
        self.cost = {}          # function digest -> seconds per call
        self.grow = {}          # digest -> next size before a measurement
        self.lock = threading.Lock()
        self.queue = []
        self.armed = False      # a flush is posted: submits queue
        self.bursts = 0         # batches of submits sent (stats)
        self.burst_calls = 0    # calls they carried

    # ------------------------------------------------------------- sizes

    def measured(self, digest, seconds, n):
        if n <= 0:
            return
        per = max(seconds / n, 1e-7)
        old = self.cost.get(digest)
        self.cost[digest] = per if old is None else (old + per) / 2

    def size(self, digest, most, grow=False):
        """Calls for the next chunk of digest's function: from its
        measured cost; before any, one call (a map: its first chunk
        measures it within one call's time, and slow calls are never
        queued behind each other), or with grow, one and then twice the
        last (bursts, where only a batch measures, and whose batches
        the caller spreads over the cores)."""
        per = self.cost.get(digest)
        if per is None:
            if not grow:
                return 1
            n = self.grow.get(digest, 1)
            self.grow[digest] = min(n * 2, most)
            return n
        return max(1, min(most, int(TARGET_S / per)))

    # ------------------------------------------------------------ bursts

    def takes(self, opts, fn, fresh):
        """True if a submit of fn with opts may wait for the burst."""
        from .cwl import CWLApp
        from .shell import ShellFunction
        return (self.submits and not fresh and self.ex._journal is None
                and not isinstance(fn, (ShellFunction, CWLApp))
                and _resources_plain(opts))

    def submit(self, opts, fn, args, kwargs):
        """The first call of a burst: None, and the caller sends it at
        once as any submit (so a lone call waits for nothing), while the
        manager's thread is asked to flush. Later calls, until that flush
        runs, are queued and their Future returned: the flush sends them
        together. So calls made faster than the manager's thread turns
        share messages, and a lone call costs what it did."""
        ex = self.ex
        with self.lock:
            if not self.armed:
                self.armed = True
                first = True
            else:
                first = False
        if first:
            try:
                ex._manager.post(self.flush)
            except Exception:
                with self.lock:
                    self.armed = False
            return None
        from .executor import _Future, _Pending, _pickle_error
        with ex._lock:
            if ex._shutdown:
                raise RuntimeError("cannot schedule new futures after"
                                   " shutdown")
            key = next(ex._keys)
        future = _Future()
        future._xy_executor = ex
        future._xy_on_cancel = functools.partial(ex._cancelled, key)
        if opts["environment"] is None and \
                ex._defaults["environment"] is not None:
            opts = dict(opts, environment=ex._defaults["environment"])
        try:
            digest, fn_bytes = ex._pickles.get(fn)
        except Exception as e:
            future.set_running_or_notify_cancel()
            future.set_exception(_pickle_error(fn, e))
            return future
        # What may take the executor's declare lock happens here, on the
        # submitting thread: the flush runs on the manager's thread,
        # which must never wait for that lock (executor.py).
        ref = ex._function_refs.get(digest, fn_bytes)
        library = ex._library_for(opts["environment"])
        pending = _Pending(future, "call")
        entry = _Queued(key, pending, fn, digest,
                        fn_bytes if ref is None else None, ref, library,
                        args, kwargs, opts)
        with ex._lock:
            ex._pending[key] = pending
        with self.lock:
            queued = self.armed
            if queued:
                self.queue.append(entry)
        if not queued:
            # The flush ran meanwhile: this one alone, at once.
            self._send_one(entry)
        return future

    def flush(self):
        """On the manager's thread: sends the queued calls, those of the
        same library, priority and tag together in batches."""
        ex = self.ex
        ex._loop_ident = threading.get_ident()
        with self.lock:
            q, self.queue = self.queue, []
            self.armed = False
        with ex._lock:
            live = ex._pending
            q = [e for e in q if e.key in live]  # not cancelled meanwhile
        groups = {}
        for e in q:
            o = e.opts
            groups.setdefault((e.library, o["priority"], o["tag"]),
                              []).append(e)
        cores = None
        pooled = bool(ex._pools)
        for group in groups.values():
            try:
                # With pools, a call of a function not yet measured goes
                # alone, as a batch of one that measures it (the
                # module's text, "Pools").
                measure = pooled and any(e.digest not in self.cost
                                         for e in group)
                if len(group) == 1 and not measure:
                    self._send_one(group[0])
                    continue
                if cores is None:
                    cores = max(1, ex._manager.stats()["cores_total"])
                # Enough batches to keep every core busy, each within
                # what the functions' measured cost says a chunk should
                # hold.
                most = max(1, min(BURST_MAX, -(-len(group) // cores)))
                if measure:
                    size = 1
                else:
                    # Each function once: size(grow=True) doubles its
                    # next batch at every call.
                    size = max(1, min(self.size(d, most, grow=True)
                                      for d in {e.digest for e in group}))
                for i in range(0, len(group), size):
                    piece = group[i:i + size]
                    if len(piece) == 1 and not measure:
                        self._send_one(piece[0])
                    else:
                        self._send_batch(piece)
            except BaseException as e:
                # Not expected; but no queued Future may be left pending.
                for entry in group:
                    self._fail(entry, e)

    def _fail(self, entry, exc):
        with self.ex._lock:
            if self.ex._pending.pop(entry.key, None) is None:
                return
        f = entry.pending.future
        if not f.done() and f.set_running_or_notify_cancel():
            f.set_exception(exc)

    def _send_one(self, e):
        """A queued call alone, as submit() would have sent it."""
        ex = self.ex
        try:
            env = e.opts["env"]
            if e.ref is None:
                payload = _calls.encode_call(e.digest, e.fn_bytes, e.args,
                                             e.kwargs, env)
                inputs = []
            else:
                payload = _calls.encode_call(e.digest, _calls.FN_FILE,
                                             e.args, e.kwargs, env)
                inputs = [(e.ref, _calls.FN_FILE)]
        except Exception as x:
            from .executor import _pickle_error
            return self._fail(e, _pickle_error(e.fn, x))
        own = []
        try:
            if len(payload) > _calls.MESSAGE_MAX:
                # Too large for a message: the payload travels as a file
                # (declared without the declare lock; on the manager's
                # thread this runs at once).
                h = ex._manager.declare_buffer(payload, "task")
                own.append(h)
                inputs.append((h, _calls.CALL_FILE))
                payload = _calls.encode_indirect(_calls.CALL_FILE)
            spec = {"inputs": inputs}
            spec.update(ex._resources(e.opts, spec))
            spec.pop("env", None)
            ex._manager.submit(e.key, library=e.library, payload=payload,
                               **spec)
        except Exception as x:
            self._fail(e, x)
        finally:
            from .executor import _give_back
            for h in own:
                _give_back(ex._manager, h)

    def _send_batch(self, piece):
        """Several queued calls as one task."""
        ex = self.ex
        from .executor import _Pending
        fns, inputs = {}, []
        for e in piece:
            if e.digest not in fns:
                if e.ref is None:
                    fns[e.digest] = e.fn_bytes
                else:
                    name = f"{_calls.FN_FILE}.{len(inputs)}"
                    fns[e.digest] = name
                    inputs.append((e.ref, name))
        calls = [(e.digest, e.args, e.kwargs, e.opts["env"]) for e in piece]
        try:
            payload = _calls.encode_batch(fns, calls)
        except Exception:
            payload = None  # one of them will not pickle: each alone
        if payload is None or len(payload) > _calls.MESSAGE_MAX:
            for e in piece:
                self._send_one(e)
            return
        with ex._lock:
            key = next(ex._keys)
            p = _Pending(cf.Future(), "burst")
            p.back = [(e.key, e.pending, e.digest) for e in piece]
            ex._pending[key] = p
        spec = {"inputs": inputs}
        spec.update(ex._resources(piece[0].opts, spec))
        spec.pop("env", None)
        try:
            # calls: the scaler counts the batch as its calls ("Pools").
            ex._manager.submit(key, library=piece[0].library,
                               payload=payload, calls=len(piece), **spec)
        except Exception as x:
            with ex._lock:
                ex._pending.pop(key, None)
            for e in piece:
                self._fail(e, x)
            return
        self.bursts += 1
        self.burst_calls += len(piece)

    # ------------------------------------------------------------ results

    def outcome(self, p, result, exit_code, output, error, worker, failure):
        """The outcome of a chunk ("chunk") or a batch of submits
        ("burst"), which executor._outcome hands here: a chunk's is
        (values, errors); a burst's sets each call's Future itself."""
        from . import _core
        from .executor import _failure
        if result != _core.RESULT_SUCCESS:
            err = lambda: _failure("call", result, exit_code, output,
                                   error, worker, failure)
            if p.kind == "chunk":
                return "err", err()
            return self._finish_burst(p, None, err)
        try:
            seconds, values, errors = _calls.decode_batch(bytes(output))
        except Exception as e:
            from .errors import PickleError

            def err():
                x = PickleError(f"the results could not be unpickled here:"
                                f" {type(e).__name__}: {e}")
                x.__cause__ = e
                return x
            if p.kind == "chunk":
                return "err", err()
            return self._finish_burst(p, None, err)
        if p.kind == "chunk":
            self.measured(p.back, seconds, len(values))
            return "ok", (values, errors)
        return self._finish_burst(p, (seconds, values, errors), None)

    def _finish_burst(self, p, decoded, err):
        ex = self.ex
        if decoded is not None:
            seconds, values, errors = decoded
            for digest in {d for _, _, d in p.back}:
                self.measured(digest, seconds, len(values))
        for i, (key, sub, _) in enumerate(p.back):
            with ex._lock:
                if ex._pending.pop(key, None) is None:
                    continue  # cancelled
            f = sub.future
            if not f.set_running_or_notify_cancel():
                continue
            if decoded is None:
                f.set_exception(err())
            elif i in errors:
                f.set_exception(errors[i])
            else:
                f.set_result(values[i])
        return "ok", None


def map_calls(ex, opts, fn, iterables, timeout, chunksize):
    """Executor.map: a generator of fn's results over zip(*iterables), in
    order, sent in chunks (see the module's text); the input is read
    ahead by a bounded number of chunks."""
    from .executor import _Options, _pickle_error
    if chunksize is not None and (not isinstance(chunksize, int)
                                  or chunksize < 1):
        raise ValueError("chunksize must be an int >= 1")
    fresh = ex._fresh if opts["fresh"] is None else opts["fresh"]
    from .cwl import CWLApp
    from .shell import ShellFunction
    if fresh or isinstance(fn, (ShellFunction, CWLApp)) or opts["outputs"] \
            or ex._journal is not None or \
            any(getattr(f, "per_call", False) for f in opts["inputs"]):
        # One task per call, as the standard map makes them.
        return cf.Executor.map(_Options(ex, opts), fn, *iterables,
                               timeout=timeout)
    if opts["environment"] is None and \
            ex._defaults["environment"] is not None:
        opts = dict(opts, environment=ex._defaults["environment"])
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        digest, fn_bytes = ex._pickles.get(fn)
    except Exception as e:
        raise _pickle_error(fn, e) from e
    run = _MapRun(ex, opts, fn, digest, fn_bytes, zip(*iterables),
                  chunksize)
    run.refill()  # the work starts now, as the standard map's does
    return run.results(deadline)


class _MapRun:
    """One map's chunks in flight, oldest first."""

    def __init__(self, ex, opts, fn, digest, fn_bytes, items, chunksize):
        self.ex, self.opts, self.fn = ex, opts, fn
        self.digest = digest
        ref = ex._function_refs.get(digest, fn_bytes)
        self.fn_arg = fn_bytes if ref is None else _calls.FN_FILE
        self.inputs = [] if ref is None else [(ref, _calls.FN_FILE)]
        self.items = items
        self.chunksize = chunksize
        self.window = collections.deque()  # (key, future, n)
        self.done_reading = False
        try:
            cores = ex._manager.stats()["cores_total"]
        except Exception:
            cores = 0
        # Chunks in flight: enough to fill every core and its call window
        # (2 more per core) with some to spare, so that no worker waits
        # while this side reads the input.
        self.ahead = max(8, 4 * max(cores, len(getattr(
            ex._local, "procs", ())) or 1) + 4)
        self.library = ex._library_for(opts["environment"])
        self.spec = ex._resources(opts, {"inputs": list(self.inputs)})
        self.spec.pop("env", None)
        if opts["time_limit"]:
            self.time_limit = float(opts["time_limit"])
        else:
            self.time_limit = 0.0

    def refill(self):
        b = self.ex._batching
        while not self.done_reading and len(self.window) < self.ahead:
            n = self.chunksize or b.size(self.digest, CHUNK_MAX)
            chunk = list(itertools.islice(self.items, n))
            if not chunk:
                self.done_reading = True
                return
            self._send(chunk)

    def _send(self, chunk):
        ex = self.ex
        from .executor import _Pending, _pickle_error
        fut = cf.Future()
        try:
            payload = _calls.encode_map(self.digest, self.fn_arg, chunk)
        except Exception as e:
            # The first item that will not pickle ends the map there: the
            # ones before it go, it raises, and none after it is read.
            bad = next((i for i, a in enumerate(chunk)
                        if not _pickles(a)), 0)
            if bad:
                self._send(chunk[:bad])
            fut.set_exception(_pickle_error(self.fn, e))
            self.window.append((0, fut, 1))
            self.done_reading = True
            return
        spec = dict(self.spec)
        spec["inputs"] = list(spec.get("inputs") or ())
        own = []
        if len(payload) > _calls.MESSAGE_MAX:
            h = ex._manager.declare_buffer(payload, "task")
            own.append(h)
            spec["inputs"].append((h, _calls.CALL_FILE))
            payload = _calls.encode_indirect(_calls.CALL_FILE)
        if self.time_limit:
            # The limit is each call's: a chunk has that much per call.
            spec["time_limit"] = self.time_limit * len(chunk)
        with ex._lock:
            if ex._shutdown:
                raise RuntimeError("cannot schedule new futures after"
                                   " shutdown")
            key = next(ex._keys)
            p = _Pending(fut, "chunk")
            p.back = self.digest
            ex._pending[key] = p
        try:
            ex._manager.submit(key, library=self.library, payload=payload,
                               calls=len(chunk), **spec)
        except Exception as e:
            with ex._lock:
                ex._pending.pop(key, None)
            fut.set_exception(e)
        finally:
            from .executor import _give_back
            for h in own:
                _give_back(ex._manager, h)
        self.window.append((key, fut, len(chunk)))

    def results(self, deadline):
        window = self.window
        try:
            while window:
                key, fut, n = window[0]
                if deadline is None:
                    values, errors = fut.result()
                else:
                    values, errors = fut.result(deadline - time.monotonic())
                window.popleft()
                self.refill()
                if errors:
                    first = min(errors)
                    yield from values[:first]
                    raise errors[first]
                yield from values
        finally:
            self.done_reading = True
            for key, fut, n in window:
                if key and not fut.done():
                    fut.cancel()
                    self.ex._cancelled(key)


def _pickles(a):
    try:
        _calls._cloudpickle().dumps(a)
        return True
    except Exception:
        return False
