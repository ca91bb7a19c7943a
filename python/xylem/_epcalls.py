"""What a worker's library runs for the calls of an endpoint's session
(docs/endpoint.md, "Python sessions"): a session's call (_call), a group
of them as one task (_batch), a chunk of a map (_chunk).

The session server submits these to its Executor, whose journal knows a
task by its function's pickle and its arguments: they live here, in a
module a library imports cheaply (no sockets, threads or executor), and
cloudpickle pickles them by reference, the same bytes at each of the
server's starts (the server itself runs as __main__, whose functions it
would copy by value, and a copy over 4 KiB travels as a file after its
first use: another task to the journal).
"""

import collections
import pickle
import time

from ._calls import MESSAGE_MAX, _plain

FRAME_MAX = 64 << 20

def _dumps_result(ok, value, limit=FRAME_MAX - 4096):
    """A call's outcome as bytes: the value, or the exception (one that
    does not pickle, or is over limit, becomes a RuntimeError that says
    so)."""
    what = "result" if ok else "exception"
    try:
        if ok and _plain((value,)):
            # Most results: plain pickle writes these as cloudpickle
            # would, at a tenth of the cost.
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            import cloudpickle
            data = cloudpickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - any pickling failure
        return False, cloudpickle.dumps(RuntimeError(
            "the call's %s could not be pickled: %s" % (what, e)))
    if len(data) > limit:
        import cloudpickle
        return False, cloudpickle.dumps(RuntimeError(
            "the call's %s is %d bytes pickled, over the endpoint's limit"
            " of %d%s" % (what, len(data), limit, "" if limit ==
                          FRAME_MAX - 4096 else " for a call in a batch")))
    return ok, data


# A payload is the pickle of (fn, args, kwargs) (a ShellFunction's, and
# every call of a client before batching), or of (PAYLOAD_V2, digest,
# fn_bytes, args, kwargs): the function pickled apart, by the client's
# function cache, so that the library unpickles each function once
# (_function), not at each call.
PAYLOAD_V2 = "xy2"
# Calls grouped into one task (Server._groups): at most this many, and
# this many bytes of payloads; a group stops running its calls once
# their results pass BATCH_REPLY (the rest go in a group of their own),
# and a call in a group may return at most BATCH_ONE_MAX bytes (the
# group's reply is one message of the executor's, 8 MiB).
BATCH_CALLS = 512
BATCH_BYTES = 1 << 20
BATCH_REPLY = 1 << 20
BATCH_ONE_MAX = 6 << 20
# A call alone: its reply is one message of the executor's too.
CALL_ONE_MAX = MESSAGE_MAX - 4096
# What a group's calls should take together (s), once their function's
# cost is known (before, UNKNOWN_CALLS a group): as the local executor's
# bursts (docs/python.md, "Batched calls").
BATCH_SECONDS = 0.010
UNKNOWN_CALLS = 8
_functions = collections.OrderedDict()  # digest -> fn, in the library


def _function(digest, data):
    """The function with this digest, unpickled once per library
    process (the 64 most recent kept)."""
    fn = _functions.get(digest)
    if fn is None:
        fn = pickle.loads(data)
        _functions[digest] = fn
        if len(_functions) > 64:
            _functions.popitem(last=False)
    else:
        _functions.move_to_end(digest)
    return fn


def _load(payload):
    call = pickle.loads(payload)
    if len(call) == 5 and call[0] == PAYLOAD_V2:
        return _function(call[1], call[2]), call[3], call[4]
    return call


def _call(session, seq, payload):
    """A session's call, as the worker's library runs it. The session and
    the call's number are arguments so that each call is a task of its
    own to the session server's journal, the same one across the
    server's restarts: a call that ran while the server was killed is
    adopted from its worker, or answered from the journal, not run
    again; two equal calls are two calls. Returns (seconds, ok, bytes):
    the time the call took (the server sizes the groups of its function
    by it) and its outcome pickled (_dumps_result), as _batch does."""
    t0 = time.perf_counter()
    try:
        fn, args, kwargs = _load(payload)
        ok, value = True, fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - the call's own
        ok, value = False, e
    return (time.perf_counter() - t0,) + _dumps_result(ok, value,
                                                       CALL_ONE_MAX)


def _batch(session, first, payloads):
    """A group of a session's calls, numbered first, first + 1, ..., as
    one task: the session, the first number and the payloads (so their
    count) make it the same task to the journal across the server's
    restarts, as for _call. Returns (seconds per call, [(ok, bytes)]):
    each call's outcome pickled here (_dumps_result), in order; fewer
    than the payloads when their results passed BATCH_REPLY (the server
    sends the rest again, as a group of their own)."""
    t0 = time.perf_counter()
    out, total = [], 0
    for payload in payloads:
        if total > BATCH_REPLY:
            break
        try:
            fn, args, kwargs = _load(payload)
            ok, value = True, fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - the call's own
            ok, value = False, e
        ok, data = _dumps_result(ok, value, BATCH_ONE_MAX)
        total += len(data)
        out.append((ok, data))
    return (time.perf_counter() - t0) / max(1, len(out)), out


def _chunk(fn, items):
    """A chunk of a map: [(True, value) or (False, exception)] for each
    argument tuple, in order."""
    out = []
    for args in items:
        try:
            out.append((True, fn(*args)))
        except Exception as e:  # noqa: BLE001 - raised at its place
            out.append((False, e))
    return out
