"""How a Python call travels: the payload the executor sends, the reply
the library (or the fresh-mode runner) sends back, and running a call
between the two. Shared by executor.py, library.py and runner.py.

It imports cloudpickle only when a call is made or encoded, so that the
library can report a missing cloudpickle as it starts.

A payload is a pickled tuple, one of:

    ("call", digest, fn, args, kwargs, env)
        digest is the SHA-256 of the cloudpickled function. fn is that
        pickle (bytes), or the sandbox name (str) of an input holding it:
        the executor sends a function's pickle by reference once it has
        sent it before (FunctionRefs), and each worker then fetches the
        object once and keeps it in its cache. A library unpickles each
        distinct function once and keeps it, so a function and the modules
        it imports load once per process; it reads the file only for a
        digest it does not hold, and removes the file from the sandbox
        before the call runs either way. env is None or a dict of
        environment variables set during the call.
    ("file", name)
        the real payload is the file `name` in the call's sandbox (used
        when it is larger than a call message may be).
    ("map", digest, fn, arg_tuples)
        a chunk of Executor.map: fn(*a) for each a in arg_tuples, in
        order, in one message (docs/python.md, "Batched calls").
    ("batch", fns, calls)
        a burst of submits sent together: fns maps each digest to its fn
        (as above), calls is a list of (digest, args, kwargs, env).

A chunk's or a batch's reply is one pickled tuple:

    ("batch", seconds, values, errors)
        seconds is the time the calls took together (what the executor
        sizes its chunks by); values the results in order (None where a
        call raised) and errors a dict {index: error reply bytes}; or,
        when the values would not pickle together or are too large
        together, values is None and errors a list of one reply (bytes,
        as below) per call.

A reply is a pickled tuple, one of:

    ("ok", value[, printed])
    ("err", exc_bytes, type_name, message, traceback_text[, printed])
        exc_bytes is the pickled exception, or None if it could not be
        pickled or would not unpickle; the strings let the manager side
        build a stand-in (errors.RemoteError) if exc_bytes is None or
        cannot be loaded there.
    printed, present only when the call wrote to sys.stdout or
    sys.stderr, is (stdout_text, stderr_text), the tail of each
    (PRINTED_MAX characters); the executor shows it to the caller
    (docs/python.md, "What a function prints"). What the call writes
    still reaches the process's own output too (the instance's log).
"""

import hashlib
import os
import pickle
import traceback

# The call's payload in its sandbox when it is too large for a message,
# and the fresh-mode runner's input and output.
CALL_FILE = "xylem-call.pkl"
RESULT_FILE = "xylem-result.pkl"

# Room for the frame header around a payload or reply (a call's task id
# and sandbox path; a reply's task id) below the 8 MiB frame limit.
FRAME_SLACK = 64 * 1024
MESSAGE_MAX = (8 << 20) - FRAME_SLACK

# The environment variable that carries the manager's major.minor Python,
# and the exit status of a process whose own is another, reserved for that
# (xylem/__init__.py; EX_CONFIG in sysexits.h): a library instance that
# exits with it before it is ready, or a fresh-mode runner that exits
# with it, was started with the wrong interpreter. MISMATCH_TEXT begins
# the line it writes to stderr, shown to people.
PYTHON_ENV = "XYLEM_PYTHON"
MISMATCH_STATUS = 78
MISMATCH_TEXT = "interpreter mismatch"

# What a library instance writes to its log (stdout and stderr, one pipe)
# as each call ends: the log of an instance that ends during a call is
# shown from the last mark on, so that it shows only that call's prints.
CALL_MARK = b"\x1exylem: call\x1e\n"


def this_call_output(log):
    """The part of an instance's log (text) after the last CALL_MARK."""
    mark = CALL_MARK.decode()
    i = log.rfind(mark)
    return log if i < 0 else log[i + len(mark):]


# The environment variable that carries directories for the end of
# sys.path, after an environment's own packages (xylem/__init__.py).
PATH_AFTER_ENV = "XYLEM_PYTHONPATH_AFTER"


def _cloudpickle():
    import cloudpickle
    return cloudpickle


def pickle_function(fn):
    """Returns (digest, bytes) of the cloudpickled function."""
    data = _cloudpickle().dumps(fn)
    return hashlib.sha256(data).digest(), data


# Types that plain pickle writes exactly as cloudpickle does (never by
# value), so arguments made only of these skip cloudpickle's slower
# pickler.
_PLAIN = frozenset((int, float, complex, bool, str, bytes, type(None)))


def _plain(values):
    """True if every value is of a _PLAIN type, or a tuple or list of
    such (one level down)."""
    for v in values:
        t = type(v)
        if t in _PLAIN:
            continue
        if t is tuple or t is list:
            for w in v:
                if type(w) not in _PLAIN:
                    return False
            continue
        return False
    return True


class FunctionPickles:
    """The executor's side of the function cache: a plain function
    (types.FunctionType), or a functools.partial of one over plain
    functions, is cloudpickled when it is first submitted, and
    those bytes are sent with every later call of the same function
    object, which saves most of a call's pickling.

    The entry is checked against the function's code, defaults and
    closure cells (what a program may rebind on a function object), and
    a changed one is pickled again. The module globals that cloudpickle
    copies by value (those of a function defined in __main__ or a
    notebook) are copied once, when the function is first pickled:
    changing such a global afterwards is not seen by later calls, as
    with Dask's function cache; pass the value as an argument instead.
    Entries go with their functions (weak references)."""

    LIMIT = 1 << 20  # larger pickles are not kept

    def __init__(self):
        import weakref
        self.entries = weakref.WeakKeyDictionary()

    @staticmethod
    def _state(fn):
        cells = fn.__closure__
        if cells:
            try:
                cells = tuple(id(c.cell_contents) for c in cells)
            except ValueError:  # an empty cell
                return None
        return (fn.__code__, fn.__defaults__, fn.__kwdefaults__, cells)

    def _key_state(self, fn):
        """The state to check an entry against, or None if fn is not
        cached: a plain function, or a partial of one over plain
        functions (the Parsl executor's wrapper of an app)."""
        if type(fn) is _FunctionType:
            return self._state(fn)
        if type(fn) is _partial and not fn.keywords and \
                type(fn.func) is _FunctionType and \
                all(type(a) is _FunctionType for a in fn.args):
            states = tuple(self._state(f) for f in (fn.func, *fn.args))
            return None if None in states else states
        return None

    def get(self, fn):
        """(digest, bytes) of fn pickled, from the cache when it holds
        fn unchanged."""
        state = self._key_state(fn)
        if state is None:
            return pickle_function(fn)
        entry = self.entries.get(fn)
        if entry is not None and entry[0] == state:
            return entry[1]
        pickled = pickle_function(fn)
        if len(pickled[1]) <= self.LIMIT:
            self.entries[fn] = (state, pickled)
        return pickled


_FunctionType = type(pickle_function)
_partial = __import__("functools").partial


# The sandbox name of a call's function pickle when it travels by
# reference: the library removes it before the call runs, so the call's
# sandbox holds only its own inputs.
FN_FILE = ".xylem-function.pkl"


class FunctionRefs:
    """Which function pickles travel by reference (docs/python.md, "Warm
    and fresh"). A pickle of at most INLINE_MAX bytes always travels
    inline: on one host a reference costs about as much as that many
    inline bytes (an input the manager schedules, a link into the
    sandbox and its removal; docs/python.md has the measurement).
    A larger one travels inline the first time its digest is sent, and
    from the second time on as a content-addressed object that
    declare(bytes) makes (the executor's declared buffer, kept on
    workers for the executor's life): each worker fetches it once and
    keeps it in its cache. So a function pickled anew for every call (a
    closure over each call's values) never becomes an object, and a
    function called many times reaches each worker once as an object
    (and the first worker once more, inline with the first call).

    The digests sent once are forgotten SEEN_MAX at a time, so that a
    stream of distinct functions costs bounded memory; a function
    forgotten that way is sent inline once more."""

    INLINE_MAX = 4096
    SEEN_MAX = 4096

    def __init__(self, declare, lock=None):
        """declare(bytes) returns a handle; lock (default a lock of its
        own) is held while it runs, so that a digest is declared once
        whatever the threads that submit."""
        import threading
        self.declare = declare
        self.handles = {}   # digest -> handle of its declared object
        self.seen = set()   # digests sent inline once
        self.lock = lock if lock is not None else threading.Lock()

    def get(self, digest, fn_bytes):
        """The handle of the object holding fn_bytes, or None if they go
        inline this time."""
        h = self.handles.get(digest)
        if h is not None or len(fn_bytes) <= self.INLINE_MAX:
            return h
        with self.lock:
            h = self.handles.get(digest)
            if h is None:
                if digest not in self.seen:
                    if len(self.seen) >= self.SEEN_MAX:
                        self.seen.clear()
                    self.seen.add(digest)
                    return None
                h = self.declare(fn_bytes)
                self.handles[digest] = h
                self.seen.discard(digest)
        return h


def encode_call(digest, fn, args, kwargs, env=None):
    """The payload for calling the function whose pickle has this digest
    (fn: the pickle, or FN_FILE when it is an input of the call) with
    args and kwargs; raises whatever pickling raises."""
    call = ("call", digest, fn, tuple(args), dict(kwargs), env)
    if _plain(args) and (not kwargs or _plain(kwargs.values())):
        return pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    return _cloudpickle().dumps(call)


def encode_indirect(name):
    return pickle.dumps(("file", name))


class FunctionCache:
    """Unpickled functions by digest, the most recently used kept."""

    def __init__(self, size=256):
        self.size = size
        self.fns = {}

    def get(self, digest, fn):
        """The function with this digest: from the cache, else unpickled
        from fn, its pickle or the name of a file holding it. Such a file
        is removed either way (encode_call)."""
        f = self.fns.pop(digest, None)
        if type(fn) is str:
            path, fn = fn, None
            if f is None:
                with open(path, "rb") as fh:
                    fn = fh.read()
            try:
                os.unlink(path)
            except OSError:
                pass
        if f is None:
            f = pickle.loads(fn)
        self.fns[digest] = f  # re-inserted last: the newest
        while len(self.fns) > self.size:
            del self.fns[next(iter(self.fns))]
        return f


def _type_name(exc):
    t = type(exc)
    mod = getattr(t, "__module__", "")
    if mod in ("builtins", "__main__", None, ""):
        return t.__qualname__
    return "%s.%s" % (mod, t.__qualname__)


def error_reply(exc, tb_text=None, printed=None):
    """The reply for an exception: itself if it survives a pickle round
    trip here, else only its type name, message and traceback; and what
    the call printed, if anything."""
    if tb_text is None:
        tb_text = "".join(traceback.format_exception(
            type(exc), exc, exc.__traceback__))
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable %s>" % type(exc).__name__
    try:
        exc_bytes = _cloudpickle().dumps(exc)
        pickle.loads(exc_bytes)  # many exceptions pickle but do not load
    except Exception:
        exc_bytes = None
    reply = ("err", exc_bytes, _type_name(exc), message, tb_text)
    return pickle.dumps(reply + (printed,) if printed else reply)


def _result_reply(value, limit, printed=None):
    reply = ("ok", value, printed) if printed else ("ok", value)
    try:
        if _plain((value,)):
            # Most results: plain pickle writes these as cloudpickle
            # would, at a tenth of the cost.
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            data = _cloudpickle().dumps(reply)
    except Exception as e:
        err = _pickle_error("the result (%s) could not be pickled: %s: %s"
                            % (type(value).__name__, type(e).__name__, e))
        return error_reply(err, tb_text=traceback.format_exc())
    if limit is not None and len(data) > limit:
        err = _pickle_error(
            "the result is %d bytes pickled, over the %d a call may return;"
            " write it to an output file (xylem.File) instead"
            % (len(data), limit))
        return error_reply(err, tb_text="", printed=printed)
    return data


def _pickle_error(text):
    # Imported here: the package's errors module is plain Python, but
    # keep this file importable on its own.
    from xylem.errors import PickleError
    return PickleError(text)


# The tail of each of a call's stdout and stderr that its reply carries.
PRINTED_MAX = 64 * 1024


class _Tee:
    """Stands in for sys.stdout or sys.stderr during a call: writes go on
    to the real stream and are kept (their last PRINTED_MAX characters)
    for the reply."""

    def __init__(self, stream):
        self._stream = stream
        self._parts = []
        self._size = 0

    def write(self, s):
        if self._stream is not None:
            try:
                self._stream.write(s)
            except Exception:
                pass
        if not isinstance(s, str):
            s = str(s)
        self._parts.append(s)
        self._size += len(s)
        if self._size > 2 * PRINTED_MAX:
            self._parts = [self.text()]
            self._size = len(self._parts[0])
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._stream is not None:
            self._stream.flush()

    def text(self):
        return "".join(self._parts)[-PRINTED_MAX:]

    def __getattr__(self, name):  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def _call_printing(env, fn, args, kwargs):
    """(value, printed) of _with_env, printed as in a reply (None when
    nothing was written). Raises what the call raised; what it printed
    is then in _last_printed[0]."""
    import sys
    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        value = _with_env(env, fn, args, kwargs)
    finally:
        sys.stdout, sys.stderr = saved
        printed = (out.text(), err.text()) if out._size or err._size \
            else None
        _last_printed[0] = printed
    return value, printed


# What the last call printed, for its error reply (one call at a time per
# process: a library serves its calls in turn).
_last_printed = [None]


def _with_env(env, fn, args, kwargs):
    """Calls fn with env's variables set, restoring them afterwards."""
    if not env:
        return fn(*args, **kwargs)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return fn(*args, **kwargs)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_call(payload, cache, limit=MESSAGE_MAX):
    """Runs the call in payload (in the current directory, the call's
    sandbox) and returns its reply. Never raises, except for the
    exceptions that should end the process (none are caught but those
    that the call itself raised, which become replies)."""
    try:
        call = pickle.loads(payload)
        if call[0] == "file":
            with open(call[1], "rb") as f:
                call = pickle.loads(f.read())
        if call[0] in ("map", "batch"):
            return run_batch(call, cache, limit)
        _, digest, fn, args, kwargs, env = call
        fn = cache.get(digest, fn)
    except BaseException as e:
        return error_reply(e)
    try:
        value, printed = _call_printing(env, fn, args, kwargs)
    except BaseException as e:
        # SystemExit and KeyboardInterrupt too: they are the call's, and
        # the library stays up for the next one.
        return error_reply(e, _user_traceback(e), _last_printed[0])
    return _result_reply(value, limit, printed)


def _user_traceback(e):
    """The traceback from the user's function on: this file's frames,
    where every call starts, say nothing to the user."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def decode_reply(data):
    """("ok", value) or ("err", exception) from a reply, the exception
    rebuilt with its remote traceback as __cause__. Raises if the reply
    cannot be unpickled (its value's type is unknown here)."""
    reply = pickle.loads(data)
    if reply[0] == "ok":
        return reply
    from xylem.errors import RemoteError, RemoteTraceback
    _, exc_bytes, type_name, message, tb_text = reply[:5]
    exc = None
    if exc_bytes is not None:
        try:
            exc = pickle.loads(exc_bytes)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(type_name, message)
    if tb_text:
        exc.__cause__ = RemoteTraceback('\n"""\n%s"""' % tb_text)
    return ("err", exc) + reply[5:]


# ------------------------------------------------------------- batches


def run_batch(call, cache, limit=MESSAGE_MAX):
    """Runs a "map" chunk or a "batch" of calls (see the module's text)
    and returns its one reply. A call that raises costs only its own
    result: the others still run and return theirs."""
    import time
    if call[0] == "map":
        _, digest, fn, arg_tuples = call
        f = cache.get(digest, fn)
        jobs = ((f, a, None, None) for a in arg_tuples)
        n = len(arg_tuples)
    else:
        _, fns, calls = call
        got = {d: cache.get(d, fn) for d, fn in fns.items()}
        jobs = ((got[d], a, k, e) for d, a, k, e in calls)
        n = len(calls)
    values = [None] * n
    errors = {}
    t0 = time.perf_counter()
    for i, (f, args, kwargs, env) in enumerate(jobs):
        try:
            if env:
                values[i] = _with_env(env, f, args, kwargs or {})
            elif kwargs:
                values[i] = f(*args, **kwargs)
            else:
                values[i] = f(*args)
        except BaseException as e:
            values[i] = None
            errors[i] = error_reply(e, _user_traceback(e))
    seconds = time.perf_counter() - t0
    try:
        if _plain(values):
            data = pickle.dumps(("batch", seconds, values, errors),
                                protocol=pickle.HIGHEST_PROTOCOL)
        else:
            data = _cloudpickle().dumps(("batch", seconds, values, errors))
        if limit is None or len(data) <= limit:
            return data
    except Exception:
        pass
    # One reply per call, so that a value that will not pickle, or is
    # too large, fails its own call only; the largest go first while the
    # whole is over the limit.
    replies = [errors[i] if i in errors else _result_reply(v, limit)
               for i, v in enumerate(values)]
    total = sum(len(r) for r in replies)
    for i in sorted(range(n), key=lambda j: -len(replies[j])):
        if limit is None or total <= limit - 4096:
            break
        total -= len(replies[i])
        replies[i] = error_reply(_pickle_error(
            "the results of this chunk of calls are over the %d bytes a"
            " message may carry together; this one is %d bytes pickled:"
            " use a smaller chunksize, or write it to an output file"
            % (limit, len(replies[i]))), tb_text="")
        total += len(replies[i])
    return pickle.dumps(("batch", seconds, None, replies),
                        protocol=pickle.HIGHEST_PROTOCOL)


def encode_map(digest, fn, arg_tuples):
    """The payload of a map chunk; raises whatever pickling raises."""
    call = ("map", digest, fn, arg_tuples)
    if _plain(arg_tuples):
        return pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    return _cloudpickle().dumps(call)


def encode_batch(fns, calls):
    """The payload of a batch of calls (digest, args, kwargs, env)."""
    call = ("batch", fns, calls)
    if all(_plain(a) and (not k or _plain(k.values())) for _, a, k, _ in calls):
        return pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)
    return _cloudpickle().dumps(call)


def decode_batch(data):
    """(seconds, values, errors) from a chunk's reply: values one per
    call, in order (None where it raised), errors {index: exception}.
    Raises if the reply cannot be unpickled here."""
    _, seconds, values, errors = pickle.loads(data)
    if values is None:
        values, errs = [], {}
        for i, r in enumerate(errors):
            kind, v = decode_reply(r)[:2]
            values.append(v if kind == "ok" else None)
            if kind != "ok":
                errs[i] = v
        return seconds, values, errs
    return seconds, values, {i: decode_reply(r)[1]
                             for i, r in errors.items()}
