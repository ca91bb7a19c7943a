"""Python sessions through a shared endpoint (docs/endpoint.md).

`xylem endpoint` starts, for each user who asks for Python, a session
server under the user's own account: `python3 -m xylem.endpoint serve DIR`.
It holds an Executor (with a journal) and listens on DIR/session.sock,
0600 in a 0700 directory, for connections of its own user (the kernel
says who connects). A client is `xylem.Executor(endpoint="unix:PATH")`,
which is an EndpointExecutor: its calls go to the session server in
frames, its futures are resolved from the results that come back.

A session is a numbered list of calls. The server writes each call to
the session's log before it runs it, and each result when it has one,
so a client that went away (or a server that was killed and started
again by the endpoint) loses nothing: `Executor(endpoint=...,
session=ID)` in a new process re-attaches, `futures()` gives every call
of the session in the order it was submitted, and those that finished
meanwhile are resolved at once. The same call number submitted twice
runs once. A client that shuts down cleanly acknowledges the results it
received; the server then forgets them.

Frames are a 4-byte big-endian length and a pickle; a connection from
another uid is closed unread.
"""

import collections
import concurrent.futures
import os
import pickle
import socket
import struct
import sys
import threading
import time
import uuid

from ._calls import FunctionPickles, _plain
# What the worker's library runs for a session's calls: a module of its
# own (light to import, and pickled by reference, the same at each of
# the server's starts: the server runs as __main__, whose functions
# cloudpickle would copy by value).
from ._epcalls import (BATCH_BYTES, BATCH_CALLS, BATCH_SECONDS, FRAME_MAX,
                       PAYLOAD_V2, UNKNOWN_CALLS, _batch, _call, _chunk,
                       _dumps_result)

FRAME = struct.Struct(">I")
ASK_TIMEOUT = 30.0
# A session's client that answers no ping within so long, when another
# client of the user asks for the session, loses it (Server._take_over).
PROBE_S = float(os.environ.get("XYLEM_ENDPOINT_PROBE_S", "2"))


# ------------------------------------------------------------------ frames

def _frame(obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > FRAME_MAX:
        raise ValueError("a frame of %d bytes is over the limit of %d"
                         % (len(data), FRAME_MAX))
    return FRAME.pack(len(data)) + data


def _read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the connection closed")
        buf += chunk
    return bytes(buf)


def _read_frame(sock):
    (n,) = FRAME.unpack(_read_exact(sock, FRAME.size))
    if n > FRAME_MAX:
        raise ConnectionError("a frame of %d bytes is over the limit" % n)
    return pickle.loads(_read_exact(sock, n))


# ------------------------------------------------------------------ limits

# The per-call options an administrator's schema may name (endpoint.c
# checks the same list when it reads its configuration).
OPTION_NAMES = ("cores", "memory", "disk", "gpus", "retries", "time_limit",
                "priority", "tag")
COMPACT_BYTES = 1 << 20


class Refused(PermissionError):
    """A call the session server did not take: outside the
    administrator's limits or schema (the message says which). Nothing
    of it was recorded or run."""


class CertificateRefused(Refused):
    """The endpoint refuses this client's certificate: revoked (by the
    administrator, or by a later `xylem endpoint enroll` of the same
    account), or not one it issued. A connection cut or refused for it
    is not tried again: every call without a result fails with it, and
    the executor takes no more (docs/endpoint.md, "Revoking")."""


# How the endpoint begins a refusal of the certificate for good (it does
# not verify, is revoked or superseded: src/cli/ep_ca.h).
_CERT_REFUSED = "certificate refused for good: "


def _tls_refusal(why):
    """The exception for an endpoint's refusal of a TLS client: one the
    endpoint marks as the certificate's for good; others (busy, a list
    it could not read, a start that failed) are worth another try."""
    if why.startswith(_CERT_REFUSED):
        return CertificateRefused("the endpoint refused: " +
                                  why[len(_CERT_REFUSED):])
    return PermissionError("the endpoint refused: " + why)


class ResultDropped(Exception):
    """The call ran, but its result was dropped unacknowledged after the
    administrator's retention (docs/endpoint.md, "Limits")."""


class Limits:
    """The administrator's limits on a user's sessions, given by the
    endpoint as `--limit KEY=VALUE` (max_queued, max_result_bytes,
    retention) and `--option NAME=SPEC` (SPEC: "int LO..HI", "float
    LO..HI" or "enum A, B"), checked when it read its configuration."""

    def __init__(self, limits=(), options=(), pools=()):
        self.max_queued = self.max_result_bytes = self.retention = None
        # The user's caps on the workers and cores of this server, its
        # own and its pools' together (the endpoint's max_workers,
        # max_cores and `user NAME` lines).
        self.max_workers = self.max_cores = None
        # The pools a user may ask for: name -> (provider, cores,
        # max_workers, the users it is for, or None: every user).
        self.pools = {}
        for kv in pools:
            name, spec = kv.split("=", 1)
            words = spec.replace(",", " ").split()
            self.pools[name] = (words[0], int(words[1]), int(words[2]),
                                set(words[3:]) or None)
        for kv in limits:
            key, value = kv.split("=", 1)
            if key not in ("max_queued", "max_result_bytes", "retention",
                           "max_workers", "max_cores"):
                raise ValueError("unknown limit %r" % key)
            setattr(self, key, int(value))
        self.schema = {}
        for kv in options:
            name, spec = kv.split("=", 1)
            kind, _, rest = spec.strip().partition(" ")
            if name not in OPTION_NAMES:
                raise ValueError("option %r cannot be set by users" % name)
            if kind == "enum":
                self.schema[name] = (kind, [w.strip() for w in
                                            rest.split(",") if w.strip()])
            elif kind in ("int", "float"):
                conv = int if kind == "int" else float
                lo, hi = rest.split("..")
                self.schema[name] = (kind, conv(lo), conv(hi))
            else:
                raise ValueError("option %s: bad schema %r" % (name, spec))

    def check_pools(self, names, user):
        """None if user may ask for every pool in names, else why not."""
        if not isinstance(names, (list, tuple)) or \
                not all(isinstance(n, str) for n in names):
            return "pools= wants a list of pool names"
        for name in names:
            pool = self.pools.get(name)
            if pool is None:
                return "no pool %r here (the administrator offers: %s)" % (
                    name, ", ".join(sorted(self.pools)) or "none")
            if pool[3] is not None and user not in pool[3]:
                return ("pool %r is not one the administrator lets you ask "
                        "for" % name)
        return None

    def pool_room(self, name, used):
        """How many workers pool name may have within the user's caps,
        with used = (workers, cores) held already (the server's own and
        the pools granted, each at its most): (n, None), n at most the
        pool's own, or (0, why) if not one fits."""
        provider, cores, most, _ = self.pools[name]
        room = most
        if self.max_workers:
            room = min(room, self.max_workers - used[0])
        if self.max_cores:
            room = min(room, (self.max_cores - used[1]) // cores)
        if room >= 1:
            return room, None
        return 0, ("pool %r (%d cores a worker) does not fit your limits: "
                   "your session server has %d workers and %d cores, of "
                   "the administrator's max_workers %s and max_cores %s" % (
                       name, cores, used[0], used[1],
                       self.max_workers or "(none)",
                       self.max_cores or "(none)"))

    def check_call(self, payload):
        """None if what the call's function implies is within the
        schema, else why not: a ShellFunction's walltime is a time limit
        (checked against `time_limit`'s range), an MPIFunction's ranks
        are cores (against `cores`'s), on one node. Only where the
        schema bounds them: the function is unpickled for it (once more
        than to run it), outside the server's lock. A payload that does
        not unpickle fails when it runs, as before."""
        if "time_limit" not in self.schema and "cores" not in self.schema:
            return None
        from .shell import ShellFunction
        from .mpi import MPIFunction
        try:
            call = pickle.loads(payload)
            fn = pickle.loads(call[2]) if len(call) == 5 and \
                call[0] == PAYLOAD_V2 else call[0]
        except Exception:  # noqa: BLE001 - its run says why
            return None
        if not isinstance(fn, ShellFunction):
            return None
        implied = [("ShellFunction walltime", "time_limit",
                    getattr(fn, "walltime", None))]
        if isinstance(fn, MPIFunction):
            nodes = getattr(fn, "nodes", 1)
            if nodes != 1 or isinstance(nodes, bool):
                return ("MPIFunction nodes=%r: the endpoint runs an MPI "
                        "call's ranks on one node (nodes=1)" % (nodes,))
            implied.append(("MPIFunction ranks", "cores",
                            getattr(fn, "ranks", None)))
        for what, name, v in implied:
            rule = self.schema.get(name)
            if v is None or rule is None or rule[0] == "enum":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                    not rule[1] <= v <= rule[2]:
                return ("%s=%r: must be from %s to %s (the administrator's"
                        " range for %s)" % (what, v, rule[1], rule[2], name))
        return None

    def check(self, opts):
        """None if every option in opts is within the schema, else why
        not (the first one outside it)."""
        if not isinstance(opts, dict):
            return "the options must be a dict"
        for k, v in sorted(opts.items(), key=lambda kv: str(kv[0])):
            rule = self.schema.get(k)
            if rule is None:
                return ("option %r is not one the administrator lets you set"
                        " (you may set: %s)" % (k, ", ".join(
                            sorted(self.schema)) or "none"))
            if rule[0] == "enum":
                if not isinstance(v, str) or v not in rule[1]:
                    return "option %s=%r: must be one of %s" % (
                        k, v, ", ".join(rule[1]))
                continue
            want = int if rule[0] == "int" else (int, float)
            if isinstance(v, bool) or not isinstance(v, want):
                return "option %s=%r: must be an %s" % (
                    k, v, "int" if rule[0] == "int" else "int or a float")
            if not rule[1] <= v <= rule[2]:
                return "option %s=%r: must be from %s to %s" % (
                    k, v, rule[1], rule[2])
        return None


# ------------------------------------------------------------------ server

class _Conn:
    """A client's connection and its writer thread: frames are queued
    and written there, so that a client that stops reading holds up
    nobody but itself."""

    def __init__(self, sock):
        import queue
        self.sock = sock
        self.closed = False
        self.heard = 0.0  # when it last answered a ping (monotonic)
        self.probe = None  # the last ping's token
        self.queue = queue.SimpleQueue()
        threading.Thread(target=self._write, daemon=True).start()

        # A client that said it reads "results" and "accepted" frames
        # for several calls at once (its hello's asks: frames >= 2).
        self.many = False

    def send(self, obj):
        if not self.closed:  # a client gone: nothing piles up for it
            self.queue.put(_frame(obj))

    def results(self, results):
        """[(seq, ok, data)], in frames of several to a client that reads
        them, each within half FRAME_MAX (a reattach sends every held
        result at once: in one frame, 64 MiB of them failed every time)."""
        if self.many:
            part, size = [], 0
            for r in results:
                if part and size + len(r[2]) > FRAME_MAX // 2:
                    self.send(("results", part))
                    part, size = [], 0
                part.append(r)
                size += len(r[2])
            if part:
                self.send(("results", part))
        else:
            for r in results:
                self.send(("result",) + r)

    def accepted(self, seqs):
        """Calls written down, in runs of consecutive numbers."""
        if not self.many:
            for seq in seqs:
                self.send(("accepted", seq))
            return
        i = 0
        while i < len(seqs):
            j = i + 1
            while j < len(seqs) and seqs[j] == seqs[j - 1] + 1:
                j += 1
            self.send(("accepted", seqs[i], j - i))
            i = j

    def close(self):
        self.closed = True
        self.queue.put(None)

    def _write(self):
        import queue
        while True:
            # Every frame queued meanwhile goes in one write.
            out = [self.queue.get()]
            while out[-1] is not None:
                try:
                    out.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = out[-1] is None
            try:
                self.sock.sendall(b"".join(out[:-1] if stop else out))
            except OSError:
                # Gone: say so (a throttled reader waits on it), and
                # wake the reader in recv, which then ends the session's
                # attachment.
                self.closed = True
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                break
            if stop:
                break
        self.sock.close()


class _Reader:
    """Frames read from a socket through a buffer: a burst of them costs
    a few recv calls, not two each. Frames are taken from an offset
    (pos); the buffer is trimmed only before it is filled again."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0

    def _recv(self, n, flags=0):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(max(65536, n), flags)
        if not chunk:
            raise ConnectionError("the connection closed")
        self.buf += chunk

    def _fill(self, n):
        while len(self.buf) - self.pos < n:
            self._recv(n - (len(self.buf) - self.pos))

    def _whole(self):
        have = len(self.buf) - self.pos
        if have < FRAME.size:
            return False
        (n,) = FRAME.unpack_from(self.buf, self.pos)
        return have >= FRAME.size + n

    def ready(self):
        """True if a whole frame is buffered, after taking what the
        socket holds already (without waiting for more)."""
        if self._whole():
            return True
        if len(self.buf) - self.pos < 1 << 20:
            try:
                self._recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                pass
            except ConnectionError:
                return True  # the next frame() says so
        return self._whole()

    def frame(self):
        self._fill(FRAME.size)
        (n,) = FRAME.unpack_from(self.buf, self.pos)
        if n > FRAME_MAX:
            raise ConnectionError("a frame of %d bytes is over the limit" % n)
        self._fill(FRAME.size + n)
        start = self.pos + FRAME.size
        self.pos = start + n
        return pickle.loads(bytes(self.buf[start:self.pos]))


class _Session:
    """A session's calls, and its log: every record is a frame; `live`
    counts the bytes of the records still needed, per call, so that the
    log is rewritten once most of it is dead (compact)."""

    def __init__(self, sid, path):
        self.id = sid
        self.path = path
        self.calls = {}       # seq -> (ok, data, time) or None while it runs
        self.payloads = {}    # seq -> (payload, options[, meta]), while
        # it runs; meta: the function's digest (a Python call that may be
        # grouped), "shell" or "map" (one task each), absent: unknown
        # (an older client's: the server looks inside the payload).
        # Groups of calls run as one task each (Server._groups), while
        # one of their calls runs: first -> ([payload, ...] of every call
        # first, first + 1, ..., (options, meta)), the same task again
        # after a restart.
        self.groups = {}
        self.dropped = set()  # results dropped after retention, not acked
        self.next = 1         # no call number below it is taken again
        self.conn = None
        self.live = {}        # seq -> bytes of its records in the log
        self.live_bytes = 0
        # Opened on the first write, closed once the session is idle: a
        # server keeps no descriptor for each session it ever had.
        self.log = None
        try:
            self.size = os.stat(path).st_size
        except FileNotFoundError:
            self.size = 0

    def record(self, *rec, seq=None):
        self.records([(rec, seq)])

    def records(self, recs):
        """Appends [(record, seq or None)] to the log in one write."""
        if not recs:
            return
        frames = [_frame(rec) for rec, _ in recs]
        data = b"".join(frames)
        try:
            if self.log is None:
                self.log = open(self.path, "ab", buffering=0)
            self.log.write(data)
        except (OSError, ValueError) as e:
            # A record half written, or not at all, after which memory
            # would say more than the log: the server ends, and the one
            # the spawner starts reads the log back (a torn last record
            # cut) while the client sends again what it has no answer
            # for.
            _fatal("session %s: cannot write its log: %s" % (self.id, e))
        self.size += len(data)
        for (_, seq), frame in zip(recs, frames):
            if seq is not None:
                self.live[seq] = self.live.get(seq, 0) + len(frame)
                self.live_bytes += len(frame)

    def forget(self, seq):
        self.live_bytes -= self.live.pop(seq, 0)

    def rest(self):
        """Closes the log's descriptor while nothing runs and no client
        is attached (the next write opens it again)."""
        if self.log is not None and self.conn is None and \
                not self.payloads:
            self.log.close()
            self.log = None

    def compact(self, crash):
        """Rewrites the log with only what is live: the numbering, the
        calls still running and the results not acknowledged. Written to
        a temporary file and synced, renamed over the log, and the
        directory synced: a kill at any point leaves the old log or the
        new one, whole."""
        tmp = self.path + ".tmp"
        out, live = [_frame(("next", self.next))], {}
        if self.dropped:
            out.append(_frame(("dropped", sorted(self.dropped))))
        # A group still running keeps every call's submit record, those
        # answered too: a restart submits the same task again.
        grouped = {}
        for first, (payloads, extra) in self.groups.items():
            for i, payload in enumerate(payloads):
                grouped[first + i] = (payload,) + extra
        for seq in sorted(set(self.calls) | set(grouped)):
            n = 0
            if seq in self.payloads or seq in grouped:
                out.append(_frame(("submit", seq) + (
                    self.payloads.get(seq) or grouped[seq])))
                n += len(out[-1])
            if self.calls.get(seq) is not None:
                out.append(_frame(("result", seq) + self.calls[seq]))
                n += len(out[-1])
            if seq in self.groups:
                out.append(_frame(("group", seq,
                                   len(self.groups[seq][0]))))
                n += len(out[-1])
            live[seq] = n
        data = b"".join(out)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                     os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            crash("compact-before-sync")
            os.fsync(fd)
        finally:
            os.close(fd)
        crash("compact-before-rename")
        os.rename(tmp, self.path)
        crash("compact-after-rename")
        try:
            dfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            if self.log is not None:
                self.log.close()
            self.log = open(self.path, "ab", buffering=0)
        except OSError as e:
            # The old log is gone and the new one may not be written
            # to: the server ends, and its successor reads the new one.
            _fatal("session %s: cannot go on after compacting its log:"
                   " %s" % (self.id, e))
        self.size = len(data)
        self.live, self.live_bytes = live, sum(live.values())


def _log(what, *args):
    print("xylem endpoint session server: " + what % args, file=sys.stderr,
          flush=True)


def _fatal(why):
    """Ends the session server at once (the spawner starts it again, and
    it reads its logs back): for a log whose state on disk this process
    can no longer be sure of."""
    _log("%s: exiting, to start again from the logs", why)
    os._exit(75)


class Server:
    """The session server: one per user, started by the endpoint."""

    def __init__(self, directory, workers=1, idle_exit=300, limits=None,
                 cores_per_worker=1):
        self.dir = os.path.abspath(directory)
        os.makedirs(os.path.join(self.dir, "sessions"), 0o700,
                    exist_ok=True)
        self._listen()
        # Listening before the executor starts (and its extension
        # loads): a client's hello waits in the socket meanwhile,
        # rather than the client trying to connect again and again.
        from .executor import Executor
        self.idle_exit = idle_exit
        self.limits = limits or Limits()
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)  # max_queued
        self.sessions = {}
        self.held = 0       # bytes of results not acknowledged
        self.throttled = False
        self.granted = set()  # pools added to the executor
        # Workers and cores held, at their most: the server's own, then
        # each pool granted (within the user's caps, Limits.pool_room).
        self.held_size = [workers, workers * cores_per_worker]
        self.costs = {}     # a function's digest -> seconds a call
        self.cores, self.cores_at = 1, -1e9
        self.swept = 0.0
        self.compact_bytes = int(os.environ.get(
            "XYLEM_ENDPOINT_COMPACT_BYTES", COMPACT_BYTES))
        self.busy_since = time.monotonic()
        # The administrator's PYTHONPATH (the endpoint's `environment`)
        # is where this package and cloudpickle are: calls need both.
        self.ex = Executor(workers=workers, cores_per_worker=cores_per_worker,
                           journal=os.path.join(self.dir, "journal"),
                           pythonpath=os.environ.get("PYTHONPATH"))
        sessions = os.path.join(self.dir, "sessions")
        for name in sorted(os.listdir(sessions)):
            if name.endswith(".tmp"):  # a compaction cut short
                os.unlink(os.path.join(sessions, name))
            elif name.endswith(".log"):
                self._replay(name[:-4])

    def _listen(self):
        """Takes DIR/server.lock (one server a directory: a second one
        would take the socket from the first and then fail on the
        journal), and listens on DIR/session.sock."""
        import fcntl
        self.lockfile = open(os.path.join(self.dir, "server.lock"), "a")
        try:
            fcntl.flock(self.lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError("another session server serves %s" % self.dir) \
                from None
        path = os.path.join(self.dir, "session.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(128)
        self.sock.settimeout(0.5)

    def _crash(self, point):
        """A crash point for the tests (XYLEM_ENDPOINT_CRASH=POINT): the
        first time it is reached, the server kills itself."""
        if os.environ.get("XYLEM_ENDPOINT_CRASH") != point:
            return
        mark = os.path.join(self.dir, "crashed-" + point)
        if not os.path.exists(mark):
            open(mark, "w").close()
            os.kill(os.getpid(), 9)

    def _log_path(self, sid):
        return os.path.join(self.dir, "sessions", sid + ".log")

    def _replay(self, sid):
        """Reads a session's log back; a torn last frame is cut off."""
        path = self._log_path(sid)
        with open(path, "rb") as f:
            data = f.read()
        good = 0
        recs = []
        while good + FRAME.size <= len(data):
            (n,) = FRAME.unpack_from(data, good)
            if good + FRAME.size + n > len(data):
                break
            try:
                rec = pickle.loads(data[good + FRAME.size:
                                        good + FRAME.size + n])
            except Exception:  # noqa: BLE001 - a torn or bad record
                break
            good += FRAME.size + n
            recs.append((rec, FRAME.size + n))
        if good < len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
        s = _Session(sid, path)
        s.size = good
        submitted, groups = {}, {}
        for rec, size in recs:
            self._apply(s, rec, size)
            if rec[0] == "submit":
                submitted[rec[1]] = rec[2:]
            elif rec[0] == "group":
                groups[rec[1]] = rec[2]
        self.sessions[sid] = s
        # A group one of whose calls has no result yet is submitted
        # again whole: the same task (the journal answers it, or adopts
        # it from its worker); the results of those answered already
        # are not taken twice (_group_done).
        grouped = set()
        for first, count in sorted(groups.items()):
            seqs = range(first, first + count)
            if not any(q in s.payloads for q in seqs) or \
                    not all(q in submitted for q in seqs):
                continue
            extra = tuple(submitted[first][1:])
            s.groups[first] = ([submitted[q][0] for q in seqs], extra)
            grouped.update(seqs)
        for seq, p in sorted(s.payloads.items()):
            if seq not in grouped:
                self._run(s, seq, *p)
        for first in sorted(s.groups):
            self._run_group(s, first)

    def _apply(self, s, rec, size):
        """One record of a session's log, read back."""
        kind = rec[0]
        if kind == "submit":
            seq = rec[1]
            s.calls.setdefault(seq, None)
            s.payloads[seq] = (rec[2], rec[3] if len(rec) > 3 else {}) + \
                tuple(rec[4:5])
            s.next = max(s.next, seq + 1)
            s.live[seq] = s.live.get(seq, 0) + size
            s.live_bytes += size
        elif kind == "result":
            seq = rec[1]
            when = rec[4] if len(rec) > 4 else time.time()
            s.calls[seq] = (rec[2], rec[3], when)
            s.payloads.pop(seq, None)
            s.next = max(s.next, seq + 1)
            s.live[seq] = s.live.get(seq, 0) + size
            s.live_bytes += size
            self.held += len(rec[3])
        elif kind == "ack":
            self._forget_acked(s, rec[1])
        elif kind in ("drop", "dropped"):
            for seq in rec[1]:
                r = s.calls.pop(seq, None)
                if r is not None:
                    self.held -= len(r[1])
                s.forget(seq)
                s.dropped.add(seq)
        elif kind == "next":
            s.next = max(s.next, rec[1])
        elif kind == "group" and rec[1] in s.live:
            s.live[rec[1]] += size
            s.live_bytes += size

    def _forget_acked(self, s, upto):
        for seq in [q for q, r in s.calls.items()
                    if q <= upto and r is not None]:
            self.held -= len(s.calls.pop(seq)[1])
            s.forget(seq)
        s.dropped = {q for q in s.dropped if q > upto}

    def _maybe_compact(self, s):
        """Under the lock: rewrites s's log once most of it is dead."""
        if s.size >= self.compact_bytes and s.live_bytes * 2 < s.size:
            before = s.size
            try:
                s.compact(self._crash)
            except OSError as e:
                _log("session %s: cannot compact its log: %s", s.id, e)
                return
            _log("session %s: log compacted, %d bytes to %d", s.id, before,
                 s.size)

    def _run(self, s, seq, payload, opts, meta=None):
        from .shell import ShellFunction
        try:
            # A Python call (its meta the function's digest) runs as
            # _call without the server unpickling it: only a client's
            # "shell", or an unknown kind, is looked inside.
            fn = None if meta not in (None, "shell") else \
                pickle.loads(payload)[0]
            if isinstance(fn, ShellFunction):
                # A command: the call's number in its environment makes
                # it a task of its own (see _call).
                env = {"XYLEM_ENDPOINT_CALL": "%s:%d" % (s.id, seq)}
                fn, args, kwargs = pickle.loads(payload)
                fut = self.ex.options(env=env, **opts).submit(
                    fn, *args, **kwargs)
                timed = False
            else:
                ex = self.ex.options(**opts) if opts else self.ex
                fut = ex.submit(_call, s.id, seq, payload)
                timed = True
        except Exception as e:  # noqa: BLE001 - the call cannot start
            fut = concurrent.futures.Future()
            fut.set_exception(e)
            timed = False
        fut.add_done_callback(lambda f: self._done(s, seq, f, timed, meta))

    def _done(self, s, seq, fut, timed=False, meta=None):
        try:
            value = fut.result()
            if timed:  # _call's (seconds, ok, data)
                seconds, ok, data = value
                if isinstance(meta, bytes):
                    self.costs[meta] = seconds
            else:
                ok, data = _dumps_result(True, value)
        except BaseException as e:  # noqa: BLE001 - the call's own failure
            ok, data = _dumps_result(False, e)
        with self.lock:
            if seq not in s.payloads:
                return  # answered already
            when = time.time()
            s.calls[seq] = (ok, data, when)
            s.payloads.pop(seq, None)
            s.record("result", seq, ok, data, when, seq=seq)
            self.held += len(data)
            conn = s.conn
            self.busy_since = time.monotonic()
            self.room.notify_all()
        if conn:
            conn.results([(seq, ok, data)])

    def _run_group(self, s, first):
        """Submits the group of calls from first (s.groups) as one task,
        _batch(SESSION, FIRST, PAYLOADS)."""
        payloads, (opts, _) = s.groups[first]
        try:
            ex = self.ex.options(**opts) if opts else self.ex
            fut = ex.submit(_batch, s.id, first, payloads)
        except Exception as e:  # noqa: BLE001 - the group cannot start
            fut = concurrent.futures.Future()
            fut.set_exception(e)
        fut.add_done_callback(lambda f: self._group_done(s, first, f))

    def _group_done(self, s, first, fut):
        """A group's results: each call's recorded, in one write, and
        sent in one frame; the calls it left (over BATCH_REPLY) become a
        group of their own, recorded before it is submitted."""
        try:
            per_call, outs = fut.result()
        except BaseException as e:  # noqa: BLE001 - the group's task failed
            per_call, outs = None, None
            failed = _dumps_result(False, e)
        rest = None
        with self.lock:
            payloads, extra = s.groups[first]
            count = len(payloads)
            if outs is None:
                outs = [failed] * count
            elif per_call is not None:
                self.costs[extra[1]] = per_call
            when, recs, sent = time.time(), [], []
            for seq, (ok, data) in zip(range(first, first + count), outs):
                if seq not in s.payloads:
                    continue  # answered already
                s.calls[seq] = (ok, data, when)
                del s.payloads[seq]
                recs.append((("result", seq, ok, data, when), seq))
                self.held += len(data)
                sent.append((seq, ok, data))
            del s.groups[first]
            left = first + len(outs)
            if len(outs) < count and left not in s.groups and \
                    left in s.payloads:
                s.groups[left] = (payloads[len(outs):], extra)
                recs.append((("group", left, count - len(outs)), left))
                rest = left
            s.records(recs)
            conn = s.conn
            self.busy_since = time.monotonic()
            self.room.notify_all()
        if conn and sent:
            conn.results(sent)
        if rest is not None:
            self._run_group(s, rest)

    def _queued(self):
        return sum(len(s.payloads) for s in self.sessions.values())

    def _throttle(self, conn):
        """Under the lock, which it lets go while it waits: holds the
        connection's reading while the user has max_queued calls queued
        (the client's writes then wait in its socket, and its flush()
        until there is room). The caller inserts the call under the same
        hold of the lock, so that several connections cannot all pass
        at the limit."""
        limit = self.limits.max_queued
        if not limit:
            return
        while self._queued() >= limit and not conn.closed:
            if not self.throttled:
                self.throttled = True
                _log("throttled: %d calls queued (max_queued %d)",
                     self._queued(), limit)
            conn.throttled = True  # alive: not taken over (_take_over)
            self.room.wait(1.0)
        conn.throttled = False
        self.throttled = False

    def _refusal(self, s, seq, opts):
        """Under the lock: why the submission of seq is refused, or
        None."""
        if not isinstance(seq, int) or seq < 1:
            return "a call number must be an int from 1"
        if seq < s.next or seq in s.dropped:
            return ("call %d of this session was answered and acknowledged,"
                    " or its result dropped: it does not run again" % seq)
        why = self.limits.check(opts)
        if why:
            return why
        cap = self.limits.max_result_bytes
        if cap and self.held > cap:
            return ("your sessions hold %d bytes of results not "
                    "acknowledged, over the administrator's "
                    "max_result_bytes of %d: collect them and acknowledge "
                    "them (ex.acknowledge(), or shutdown()) first"
                    % (self.held, cap))
        return None

    def _submit(self, s, conn, msgs):
        """Takes the submit frames msgs, that arrived together: each
        call checked (refused, or sent again), written down, accepted;
        the new ones grouped (_groups) and submitted, a task a group."""
        limit = self.limits.max_queued
        # Asked of the executor outside the lock (_groups spreads a
        # burst over its cores), and so is what each call's function
        # implies (walltime, ranks).
        cores = self._cores() if len(msgs) > 1 else 1
        implied = [self.limits.check_call(m[2]) for m in msgs]
        i = 0
        while i < len(msgs):
            with self.lock:
                self._throttle(conn)
                room = max(1, limit - self._queued()) if limit else len(msgs)
                take = list(zip(msgs[i:i + room], implied[i:i + room]))
                i += room
                acc, new, recs = [], [], []
                for msg, why_fn in take:
                    seq, payload = msg[1], msg[2]
                    opts = msg[3] if len(msg) > 3 else {}
                    if isinstance(seq, int) and seq in s.calls:
                        acc.append(seq)  # sent again after a reconnect
                        continue
                    why = self._refusal(s, seq, opts) or why_fn
                    if why:
                        conn.send(("refused", seq, why))
                        continue
                    p = (payload, opts) + tuple(msg[4:5])
                    recs.append((("submit", seq) + p, seq))
                    s.calls[seq] = None
                    s.payloads[seq] = p
                    s.next = seq + 1
                    acc.append(seq)
                    new.append(seq)
                groups = self._groups(s, new, cores)
                grouped = set()
                for first in groups:
                    n = len(s.groups[first][0])
                    recs.append((("group", first, n), first))
                    grouped.update(range(first, first + n))
                # Written down first, in one write: memory says no more
                # than the log.
                s.records(recs)
            # Written down: the client may go now.
            conn.accepted(acc)
            for first in groups:
                self._run_group(s, first)
            for seq in new:
                if seq not in grouped:
                    self._run(s, seq, *s.payloads[seq])

    def _cores(self):
        """The cores a burst is spread over: the executor's connected
        cores (looked up once a second), or the server's own workers'
        when more (while they connect, after a start: a burst of slow
        calls grouped for fewer cores would run one after another on
        them)."""
        now = time.monotonic()
        if now - self.cores_at > 1.0:
            self.cores_at = now
            try:
                self.cores = max(1, self.ex.stats()["cores_total"])
            except Exception:  # noqa: BLE001 - a hint only
                pass
        return max(self.cores, self.held_size[1])

    def _groups(self, s, seqs, cores):
        """Under the lock: makes groups (s.groups) of the calls seqs
        (new, in order) that arrived together, and returns their first
        numbers. A group is consecutive numbers of Python calls with the
        same options, none asking for retries or a time limit (which
        count per task), at most BATCH_CALLS and BATCH_BYTES; as many
        as the function's measured cost puts in BATCH_SECONDS (before a
        measurement, UNKNOWN_CALLS), and spread over the connected cores
        (a burst of slow calls is not run one after another). A call
        alone stays a task of its own (_call): it waits for nothing."""
        if len(seqs) < 2:
            return []
        runs, run = [], [seqs[0]]
        for seq in seqs[1:]:
            a, b = s.payloads[run[-1]], s.payloads[seq]
            if seq == run[-1] + 1 and a[1:] == b[1:]:
                run.append(seq)
            else:
                runs.append(run)
                run = [seq]
        runs.append(run)
        firsts = []
        for run in runs:
            opts, meta = s.payloads[run[0]][1], \
                (s.payloads[run[0]][2:] or (None,))[0]
            if len(run) < 2 or not isinstance(meta, bytes) or \
                    opts.get("retries") or opts.get("time_limit"):
                continue
            cost = self.costs.get(meta)
            size = UNKNOWN_CALLS if cost is None else \
                int(BATCH_SECONDS / max(cost, 1e-7))
            size = max(1, min(size, BATCH_CALLS,
                              -(-len(run) // cores)))
            i = 0
            while i < len(run):
                group, nbytes = [], 0
                while i < len(run) and len(group) < size and \
                        (not group or nbytes < BATCH_BYTES):
                    nbytes += len(s.payloads[run[i]][0])
                    group.append(run[i])
                    i += 1
                if len(group) > 1:
                    s.groups[group[0]] = (
                        [s.payloads[q][0] for q in group], (opts, meta))
                    firsts.append(group[0])
        return firsts

    def _grant_pools(self, names):
        """Under the lock: adds the pools named (checked) that this
        server's executor does not have yet; they stay while it runs."""
        from .executor import find_xylem
        from .pools import Pool
        for name in names:
            if name in self.granted:
                continue
            provider, cores, most, _ = self.limits.pools[name]
            most = self._fit_pool(name, most)
            pool = Pool(name, cores, provider=provider, max_workers=most)
            self.ex._manager.add_pool(**pool.options(find_xylem()))
            self.ex._pools.append(pool)
            # Workers other than its own may come now: a call that none
            # of them fits waits for the pool's, rather than failing.
            self.ex._local_only = False
            self.granted.add(name)
            _log("pool %s (%s, %d cores, at most %d workers) added",
                 name, provider, cores, most)

    def _fit_pool(self, name, most):
        """Under the lock: pool name's most workers, cut to the user's
        caps, which it then holds (the caller grants it)."""
        room, why = self.limits.pool_room(name, self.held_size)
        if why:  # another session's grant took the room meanwhile
            raise ValueError(why)
        if room < most:
            _log("pool %s: at most %d workers, not %d (the user's "
                 "max_workers %s, max_cores %s)", name, room, most,
                 self.limits.max_workers, self.limits.max_cores)
        cores = self.limits.pools[name][1]
        self.held_size[0] += room
        self.held_size[1] += room * cores
        return room

    def _pools_refusal(self, names):
        """Why the pools asked for cannot all be granted within the
        user's caps (each new one needs room for a worker), or None."""
        with self.lock:
            used = list(self.held_size)
            for name in dict.fromkeys(names):
                if name in self.granted:
                    continue
                room, why = self.limits.pool_room(name, used)
                if why:
                    return why
                used[0] += room
                used[1] += room * self.limits.pools[name][1]
        return None

    def _take_over(self, s):
        """Under the lock (let go while it waits): s is attached, and a
        new client of this user asks for it. The attached client is
        pinged; if nothing answers within PROBE_S (a half-open
        connection: a client whose host vanished behind the TLS relay,
        or a stopped process), its connection is closed and True
        returned: the new client takes the session. False if it answers,
        or is throttled (its frames wait unread: alive)."""
        old = s.conn
        if not old.many:
            # A client older than pings (its hello asked for no frames
            # of several calls, which came with them) would not answer:
            # it keeps its session, as before.
            return False
        t0 = time.monotonic()
        old.probe = t0
        old.send(("ping", t0))
        while s.conn is old and not old.closed and old.heard < t0 and \
                not getattr(old, "throttled", False):
            left = t0 + PROBE_S - time.monotonic()
            if left <= 0:
                break
            self.room.wait(left)
        if s.conn is not old or old.closed:
            return s.conn is None  # it left meanwhile: free
        if old.heard >= t0 or getattr(old, "throttled", False):
            return False
        _log("session %s: its client did not answer within %.0f s: taken "
             "over by a new client", s.id, PROBE_S)
        s.conn = None
        old.closed = True
        try:
            old.sock.shutdown(socket.SHUT_RDWR)  # its reader ends
        except OSError:
            pass
        old.close()
        return True

    def _pong(self, conn, token):
        """The client answered _take_over's ping (token: the probe's):
        alive. A late answer to an earlier probe says nothing now."""
        with self.lock:
            if token is not None and token == getattr(conn, "probe", None):
                conn.heard = time.monotonic()
                self.room.notify_all()

    def _hello(self, conn, sid, asks=None):
        import pwd
        asks = asks if isinstance(asks, dict) else {}
        if asks.get("pools"):
            why = self.limits.check_pools(
                asks["pools"], pwd.getpwuid(os.getuid()).pw_name) or \
                self._pools_refusal(asks["pools"])
            if why:
                conn.send(("error", why))
                return None
        try:
            cores = self.ex.stats()["cores_total"]  # map's chunks
        except Exception:  # noqa: BLE001 - a hint only
            cores = 0
        with self.lock:
            if sid is None:
                sid = uuid.uuid4().hex
                self.sessions[sid] = _Session(sid, self._log_path(sid))
            s = self.sessions.get(sid) if isinstance(sid, str) else None
            if s is None:
                conn.send(("error", "no session %r here (your "
                           "sessions: ex.session of each)" % (sid,)))
                return None
            if s.conn is not None and not self._take_over(s):
                conn.send(("error", "session %s is attached to "
                           "another client now" % sid))
                return None
            s.conn = conn
            conn.many = isinstance(asks.get("frames"), int) and \
                asks["frames"] >= 2
            try:
                self._grant_pools(asks.get("pools") or ())
            except (OSError, ValueError) as e:
                s.conn = None
                conn.send(("error", "cannot add the pools: %s" % e))
                return None
            conn.send(("welcome", sid, sorted(s.calls),
                       {"next": s.next, "dropped": sorted(s.dropped),
                        "cores": cores}))
            done = [(seq, r) for seq, r in sorted(s.calls.items()) if r]
        conn.results([(seq, ok, data) for seq, (ok, data, _) in done])
        return s

    def _serve(self, sock):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            sock.close()
            return
        conn = _Conn(sock)
        s = None
        reader = _Reader(sock)
        try:
            msg = None
            while True:
                msg = msg or reader.frame()
                if msg[0] == "hello" and s is None:
                    s = self._hello(conn, msg[1],
                                    msg[2] if len(msg) > 2 else None)
                    if s is None:
                        return
                elif msg[0] == "submit" and s is not None:
                    # With those that arrived with it (a burst the
                    # client wrote at once): they may be grouped.
                    msgs, msg = [msg], None
                    while len(msgs) < 4 * BATCH_CALLS and reader.ready():
                        msg = reader.frame()
                        if msg[0] != "submit":
                            break
                        msgs.append(msg)
                        msg = None
                    self._submit(s, conn, msgs)
                    continue
                elif msg[0] == "pong":
                    self._pong(conn, msg[1] if len(msg) > 1 else None)
                elif msg[0] == "ack" and s is not None:
                    with self.lock:
                        self._forget_acked(s, msg[1])
                        s.record("ack", msg[1])
                        self._maybe_compact(s)
                else:
                    return
                msg = None
        except (ConnectionError, OSError, EOFError, pickle.PickleError):
            pass
        finally:
            with self.lock:
                if s is not None and s.conn is conn:
                    s.conn = None
                    s.rest()
                self.busy_since = time.monotonic()
                conn.close()
                self.room.notify_all()

    def _sweep(self):
        """Drops the results older than the retention, unacknowledged.
        Their age is by the wall clock, which a restart does not reset
        (the results' times are in the session log)."""
        keep = self.limits.retention
        now = time.time()
        if not keep or now - self.swept < 1.0:
            return
        self.swept = now
        with self.lock:
            for s in self.sessions.values():
                old = sorted(q for q, r in s.calls.items()
                             if r is not None and r[2] < now - keep)
                if not old:
                    continue
                for seq in old:
                    self.held -= len(s.calls.pop(seq)[1])
                    s.forget(seq)
                s.dropped.update(old)
                s.record("drop", old)
                _log("session %s: dropped %d results unacknowledged for "
                     "more than %d s (retention): calls %s", s.id, len(old),
                     keep, ", ".join(map(str, old[:20])) +
                     (" ..." if len(old) > 20 else ""))
                self._maybe_compact(s)

    def _idle(self):
        with self.lock:
            if any(s.conn or s.payloads for s in self.sessions.values()):
                self.busy_since = time.monotonic()
                return False
            return time.monotonic() - self.busy_since >= self.idle_exit

    def serve_forever(self):
        _log("serving %s", os.path.join(self.dir, "session.sock"))
        try:
            while not (self.idle_exit and self._idle()):
                self._sweep()
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True).start()
            _log("idle for %d s, stopping", self.idle_exit)
        finally:
            self.sock.close()
            # Gone from the file system too: a client finds no server
            # rather than a dead socket, and asks the endpoint again.
            try:
                os.unlink(os.path.join(self.dir, "session.sock"))
            except OSError:
                pass
            self.ex.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------ client

def _ask(path, what, timeout=ASK_TIMEOUT):
    """The endpoint's answer to a request: the user's state directory."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(what.encode() + b"\n")
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            line += chunk
    except OSError as e:
        raise ConnectionError("cannot reach the endpoint at %s: %s"
                              % (path, e)) from None
    finally:
        s.close()
    words = line.decode(errors="replace").strip().split(" ", 3)
    if words[0] == "ok" and len(words) == 4:
        return words[3]
    if words[0] == "error":
        raise PermissionError("the endpoint refused: " +
                              line.decode(errors="replace")[6:].strip())
    raise ConnectionError("no answer from the endpoint at %s" % path)


def _own_dir(directory):
    """The endpoint's answer came through its front: trusted only if it
    names this user's own ~/.xylem/endpoint, theirs and 0700."""
    import pwd
    import stat
    want = os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".xylem",
                        "endpoint")
    try:
        st = os.lstat(directory)
    except OSError:
        st = None
    if directory != want or st is None or not stat.S_ISDIR(st.st_mode) \
            or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError("the endpoint named %s, not your own %s "
                              "(yours, mode 0700): not trusted"
                              % (directory, want))
    return directory


def _check_peer(sock):
    """The session server must be this user's own process."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                            struct.calcsize("3i"))
    if struct.unpack("3i", creds)[1] != os.getuid():
        raise PermissionError("the session socket is served by another "
                              "account")


# ------------------------------------------------ client: remote users (TLS)

_TLS_FILES = (("tls_cert", "XYLEM_ENDPOINT_CERT", "client.crt"),
              ("tls_key", "XYLEM_ENDPOINT_KEY", "client.key"),
              ("tls_ca", "XYLEM_ENDPOINT_CA", "ca.crt"))


def _tls_target(endpoint, given):
    """For endpoint="HOST:PORT": (host, port, (cert, key, ca)), the files
    from given (tls_cert=, ...), else the environment, else what `xylem
    endpoint enroll` wrote to ~/.xylem/endpoint-client."""
    host, sep, port = endpoint.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") \
        else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("endpoint= wants 'unix:PATH' (the endpoint's "
                         "socket) or 'HOST:PORT' (its TLS listener), not "
                         "%r" % (endpoint,))
    base = os.path.join(os.path.expanduser("~"), ".xylem",
                        "endpoint-client")
    files = []
    for opt, env, name in _TLS_FILES:
        path = given.get(opt) or os.environ.get(env) or \
            os.path.join(base, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                "no %s at %s (%s= or %s; `xylem endpoint enroll` on the "
                "login node writes it: docs/endpoint.md)" % (
                    name, path, opt, env))
        files.append(path)
    return host, int(port), tuple(files)


def _tls_open(host, port, files, timeout):
    """A connection to this user's session server through the endpoint's
    TLS listener: TLS 1.3, the server checked against the endpoint's CA
    and name, this user's certificate presented. Returns the plain end of
    a socket pair that a thread of its own relays (_tls_pump)."""
    import ssl
    cert, key, ca = files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    where = "%s:%d" % (host, port)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as e:
        raise ConnectionError("cannot reach the endpoint at %s: %s"
                              % (where, e)) from None
    try:
        tls = ctx.wrap_socket(raw, server_hostname=host)
        tls.sendall(b"python\n")
        line = b""
        # A byte at a time: nothing past the answer's line is taken.
        while not line.endswith(b"\n") and len(line) < 4096:
            chunk = tls.recv(1)
            if not chunk:
                break
            line += chunk
    except ssl.SSLError as e:
        raw.close()
        why = "the endpoint at %s refused the TLS connection: %s" % (
            where, e)
        raise (CertificateRefused if "certificate" in str(e) else
               PermissionError)(why) from None
    except OSError as e:
        raw.close()
        raise ConnectionError("the endpoint at %s closed: %s"
                              % (where, e)) from None
    text = line.decode(errors="replace").strip()
    if not text.startswith("ok "):
        tls.close()
        if text.startswith("error "):
            raise _tls_refusal(text[6:])
        raise ConnectionError("no answer from the endpoint at %s" % where)
    mine, theirs = socket.socketpair()
    mine.settimeout(timeout)  # for the welcome; _hello clears it
    threading.Thread(target=_tls_pump, args=(tls, theirs),
                     daemon=True).start()
    return mine


def _tls_pump(tls, plain):
    """Relays between tls and plain until either ends. One thread owns
    the TLS connection: Python's ssl does not take a read and a write on
    one connection from two threads at once."""
    import select
    import ssl
    cap, chunk = 4 << 20, 1 << 20
    tls.setblocking(False)
    plain.setblocking(False)
    out, inn, plain_open = b"", b"", True
    try:
        while plain_open or out:
            rl = ([plain] if plain_open and len(out) < cap else []) + \
                 ([tls] if len(inn) < cap else [])
            wl = ([tls] if out else []) + ([plain] if inn else [])
            if tls in rl and tls.pending():
                ready, wready = [tls], wl
            else:
                ready, wready, _ = select.select(rl, wl, [])
            if plain in ready:
                try:
                    data = plain.recv(1 << 16)
                    out += data
                    plain_open = bool(data)
                except BlockingIOError:
                    pass
            if tls in ready:
                try:
                    data = tls.recv(1 << 16)
                    if not data:
                        # The server ended it: what it said before
                        # still reaches the client (a refusal, say).
                        plain.setblocking(True)
                        plain.sendall(inn)
                        break
                    inn += data
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if out and tls in wready:
                try:
                    out = out[tls.send(out[:chunk]):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if inn and plain in wready:
                try:
                    inn = inn[plain.send(inn):]
                except BlockingIOError:
                    pass
    except OSError:
        pass
    finally:
        plain.close()
        tls.close()


def _client_imports():
    import cloudpickle  # noqa: F401
    from . import shell  # noqa: F401


class EndpointExecutor(concurrent.futures.Executor):
    """Calls run by the user's session server behind a shared endpoint.

    endpoint: "unix:PATH", the endpoint's socket, or "HOST:PORT", its TLS
    listener (tls_cert=, tls_key=, tls_ca=: this user's enrolled files;
    _tls_target says where they are looked for). session: a session id
    to re-attach to (ex.session of an earlier executor), or None for a
    new one. Calls take what a local Executor's take; their futures
    resolve as results come back, also across a reconnect.
    """

    def __init__(self, endpoint, session=None, timeout=ASK_TIMEOUT,
                 tls_cert=None, tls_key=None, tls_ca=None, pools=None):
        if not isinstance(endpoint, str):
            raise ValueError("endpoint= wants 'unix:PATH' or 'HOST:PORT',"
                             " not %r" % (endpoint,))
        self._tls = None
        if not endpoint.startswith("unix:"):
            self._tls = _tls_target(endpoint, {
                "tls_cert": tls_cert, "tls_key": tls_key, "tls_ca": tls_ca})
        self._path = endpoint[5:]
        self._timeout = timeout
        self._lock = threading.Lock()
        self._futures = {}
        self._pending = {}     # seq -> payload, until its result comes
        self._unaccepted = set()  # sent, not yet written down by the server
        self._next = 1
        self._out = collections.deque()
        self._acked = 0  # the last call number acknowledged
        self._wake = threading.Condition(self._lock)  # the sender's
        # flush()'s: woken when no call is left unaccepted, not at each
        # frame (a wake per frame costs the receiver a thread switch).
        self._settled = threading.Condition(self._lock)
        self._closed = False
        self.session = session
        # The administrator's pools this session asks for (by name).
        self._asks = {"pools": list(pools) if isinstance(
            pools, (list, tuple)) else pools} if pools else {}
        # This client reads "results" and "accepted" frames for several
        # calls at once.
        self._asks["frames"] = 2
        self._fnpickles = FunctionPickles()
        self._sock = None
        # What the first submit needs, imported while the endpoint
        # starts the session server (a cold start's critical path).
        threading.Thread(target=_client_imports, daemon=True).start()
        self._connect()
        self._threads = [threading.Thread(target=f, daemon=True)
                         for f in (self._receive, self._sender)]
        for t in self._threads:
            t.start()

    # -- connection
    def _connect(self):
        if self._tls is not None:
            host, port, files = self._tls
            s = _tls_open(host, port, files, self._timeout)
        else:
            s = self._unix_connect()
        self._hello(s)

    def _unix_connect(self):
        end = time.monotonic() + self._timeout
        tries = 0
        while True:
            # Asked again at each try: a server that went idle just as
            # the endpoint said it runs is started again.
            if tries % 100 == 0:
                directory = _own_dir(_ask(self._path, "python",
                                          self._timeout))
                path = os.path.join(directory, "python", "session.sock")
            tries += 1
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(self._timeout)
                s.connect(path)
                _check_peer(s)
                break
            except OSError as e:
                s.close()
                if time.monotonic() > end:
                    raise ConnectionError(
                        "your session server did not listen at %s within "
                        "%.0f s: %s (its log: %s)" % (
                            path, self._timeout, e,
                            os.path.join(directory, "python.log"))) from None
                # A server being started listens within some 100 ms.
                time.sleep(0.005)
        return s

    def _hello(self, s):
        s.sendall(_frame(("hello", self.session, self._asks)))
        msg = _read_frame(s)
        s.settimeout(None)
        if msg[0] != "welcome":
            s.close()
            raise ValueError(msg[1] if msg[0] == "error" else
                             "unexpected answer %r" % (msg[0],))
        info = msg[3] if len(msg) > 3 else {}
        with self._lock:
            self.session = msg[1]
            self._server_cores = info.get("cores", 0)
            # Numbers taken before (acknowledged since) are not reused.
            self._next = max(self._next, info.get("next", 1))
            self._drop_results(info.get("dropped", ()))
            for seq in msg[2]:
                if seq not in self._futures:
                    self._futures[seq] = concurrent.futures.Future()
                self._unaccepted.discard(seq)
                self._next = max(self._next, seq + 1)
            # What was sent but not answered goes again, in order and
            # before anything queued meanwhile (every queued submit is in
            # _pending: a later number first would make the server take
            # the earlier ones for answered): the server runs each call
            # number once. The last acknowledgement goes after them.
            self._out.clear()
            self._out.extend(_frame(("submit", seq) + p)
                             for seq, p in sorted(self._pending.items()))
            if self._acked:
                self._out.append(_frame(("ack", self._acked)))
            self._sock = s
            self._wake.notify_all()
            self._settled.notify_all()

    def _reconnect(self):
        try:
            self._sock.close()  # the server sees us gone, and detaches
        except OSError:
            pass
        while not self._closed:
            try:
                self._connect()
                return True
            except CertificateRefused as e:
                self._refused_for_good(e)
            except (OSError, ValueError):
                time.sleep(0.2)
        return False

    def _refused_for_good(self, why):
        """The endpoint cut the connection and refuses the certificate
        (revoked): every call without a result fails with why, and the
        executor is closed (submit raises why)."""
        with self._lock:
            self._broken = why
            self._closed = True
            futs = [f for f in self._futures.values() if not f.done()]
            self._pending.clear()
            self._unaccepted.clear()
            self._out.clear()
            self._wake.notify_all()
            self._settled.notify_all()
        for f in futs:
            if f.set_running_or_notify_cancel():
                f.set_exception(why)

    # -- threads
    def _receive(self):
        reader = None
        while not self._closed:
            sock = self._sock
            if reader is None or reader.sock is not sock:
                reader = _Reader(sock)  # buffered: a burst, few recvs
            try:
                msg = reader.frame()
            except (OSError, EOFError, pickle.PickleError):
                if self._closed or not self._reconnect():
                    return
                continue
            if msg[0] == "results":
                self._results(msg[1])
                continue
            if msg[0] == "refused":
                with self._lock:
                    fut = self._futures.get(msg[1])
                    self._pending.pop(msg[1], None)
                    self._unaccepted.discard(msg[1])
                    self._accepted_all()
                if fut is not None and not fut.done():
                    fut.set_exception(Refused(msg[2]))
                continue
            if msg[0] == "ping":  # the server asks whether we live
                with self._lock:
                    self._out.append(_frame(("pong", msg[1])))
                    self._wake.notify_all()
                continue
            if msg[0] == "accepted":
                # ("accepted", SEQ[, COUNT]): SEQ .. SEQ + COUNT - 1.
                count = msg[2] if len(msg) > 2 else 1
                with self._lock:
                    if count == 1:
                        self._unaccepted.discard(msg[1])
                    else:
                        self._unaccepted.difference_update(
                            range(msg[1], msg[1] + count))
                    self._accepted_all()
                continue
            if msg[0] == "result":
                self._results((msg[1:],))

    def _results(self, results):
        """[(seq, ok, data)] from the server: each future resolved."""
        futs = []
        with self._lock:
            for seq, ok, data in results:
                fut = self._futures.get(seq)
                if fut is None:
                    fut = self._futures[seq] = concurrent.futures.Future()
                self._pending.pop(seq, None)
                self._unaccepted.discard(seq)
                futs.append((fut, ok, data))
            self._accepted_all()
        for fut, ok, data in futs:
            if fut.done():
                continue
            try:
                value = pickle.loads(data)
            except Exception as e:  # noqa: BLE001 - say why, on the future
                ok, value = False, e
            try:
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
            except concurrent.futures.InvalidStateError:
                pass  # cancelled meanwhile

    def _sender(self):
        while True:
            with self._lock:
                while not self._out and not self._closed:
                    self._wake.wait()
                if self._closed and not self._out:
                    return
                # Every frame queued meanwhile goes in one write: a burst
                # of submissions is one send, a lone one is not delayed.
                data = b"".join(self._out)
                self._out.clear()
                sock = self._sock
            try:
                sock.sendall(data)
            except OSError:
                pass  # the receiver reconnects and sends _pending again

    def _accepted_all(self):
        """Under the lock: wakes flush() once nothing waits for the
        server."""
        if not self._unaccepted:
            self._settled.notify_all()

    def _drop_results(self, seqs):
        """Under the lock: the server dropped these results after the
        administrator's retention; their futures say so."""
        for seq in seqs:
            self._pending.pop(seq, None)
            self._unaccepted.discard(seq)
            fut = self._futures.setdefault(seq, concurrent.futures.Future())
            if not fut.done():
                fut.set_exception(ResultDropped(
                    "call %d's result was dropped by your session server: "
                    "unacknowledged for longer than the administrator's "
                    "retention" % seq))

    # -- the Executor interface
    def submit(self, fn, /, *args, **kwargs):
        return self._submit({}, fn, args, kwargs)

    def options(self, **opts):
        """A view whose calls carry these options (those the
        administrator's schema lets users set: docs/endpoint.md,
        "Limits"); a call with an option outside it fails with Refused."""
        return _EndpointOptions(self, opts)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """As concurrent.futures.Executor.map, results in order, with the
        calls sent in chunks of chunksize (default: enough chunks for
        about four per core of the session server), each one call of
        the session."""
        return self._map({}, fn, iterables, timeout, chunksize)

    def _map(self, opts, fn, iterables, timeout, chunksize):
        if chunksize is not None and (not isinstance(chunksize, int)
                                      or chunksize < 1):
            raise ValueError("chunksize must be an int >= 1")
        end = None if timeout is None else time.monotonic() + timeout
        items = list(zip(*iterables))
        if chunksize is None:
            per = 4 * max(1, getattr(self, "_server_cores", 0) or 1)
            chunksize = max(1, min(1024, -(-len(items) // per)))
        futs = [self._submit(opts, _chunk, (fn, items[i:i + chunksize]), {},
                             "map")
                for i in range(0, len(items), chunksize)]

        def results():
            try:
                for f in futs:
                    left = None if end is None else end - time.monotonic()
                    for ok, value in f.result(left):
                        if not ok:
                            raise value
                        yield value
            finally:
                # The chunks not yet read are not wanted: cancelled, and
                # marked so (a future only cancel()ed stays not done
                # to concurrent.futures.wait).
                for f in futs:
                    if f.cancel():
                        f.set_running_or_notify_cancel()
        return results()

    def acknowledge(self):
        """Tells the server that every result up to the first call still
        without one was received: it forgets them (and its hold on the
        administrator's max_result_bytes). Returns how many calls that
        covers."""
        with self._lock:
            upto = 0
            for seq in sorted(self._futures):
                if not self._futures[seq].done():
                    break
                upto = seq
            if upto:
                self._acked = max(self._acked, upto)
                self._out.append(_frame(("ack", upto)))
                self._wake.notify_all()
            return upto

    def _submit(self, opts, fn, args, kwargs, meta=None):
        import cloudpickle
        from .shell import ShellFunction
        if isinstance(fn, ShellFunction):
            payload, meta = cloudpickle.dumps((fn, args, kwargs)), "shell"
        else:
            # The function pickled once (the local executor's cache:
            # docs/python.md, "Warm and fresh"), and plain arguments
            # with plain pickle: most of a call's cost here.
            digest, data = self._fnpickles.get(fn)
            call = (PAYLOAD_V2, digest, data, args, kwargs)
            payload = pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL) \
                if _plain(args) and _plain(kwargs.values()) \
                else cloudpickle.dumps(call)
            meta = meta or digest
        if len(payload) > FRAME_MAX - 4096:
            raise ValueError("the call is %d bytes pickled, over the "
                             "endpoint's limit of %d" % (
                                 len(payload), FRAME_MAX - 4096))
        with self._lock:
            if self._closed:
                raise getattr(self, "_broken", None) or \
                    RuntimeError("cannot submit after shutdown")
            seq = self._next
            self._next += 1
            fut = self._futures[seq] = concurrent.futures.Future()
            self._pending[seq] = (payload, dict(opts), meta)
            self._unaccepted.add(seq)
            self._out.append(_frame(("submit", seq, payload, dict(opts),
                                     meta)))
            self._wake.notify_all()
        return fut

    def futures(self):
        """Every call of the session, in the order they were submitted."""
        with self._lock:
            return [self._futures[s] for s in sorted(self._futures)]

    def flush(self, timeout=None):
        """Waits until the server has written down every call submitted
        so far: from then on, this process may exit and a new one
        re-attach (session=) without losing any. False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unaccepted:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._settled.wait(left if left is not None else 1.0)
        return True

    def shutdown(self, wait=True, *, cancel_futures=False):
        """wait=True: waits for every result, then tells the server it
        may forget them. wait=False: waits only until the server has
        written down every call (flush), and leaves the results there
        for a later Executor(endpoint=..., session=ex.session)."""
        if cancel_futures:
            # Only here: the session server runs every call it accepted.
            for f in self.futures():
                f.cancel()
        if wait and not cancel_futures:
            # Not those the program cancelled: concurrent.futures.wait
            # counts a future only cancel()ed as not done, for ever.
            concurrent.futures.wait([f for f in self.futures()
                                     if not f.cancelled()])
        if not self.flush(2 * self._timeout):
            raise ConnectionError(
                "%d calls were not written down by your session server "
                "within %.0f s" % (len(self._unaccepted), 2 * self._timeout))
        with self._lock:
            done = [s for s, f in self._futures.items() if f.done()]
            if wait and done and len(done) == len(self._futures):
                self._out.append(_frame(("ack", max(done))))
            self._closed = True
            self._wake.notify_all()
            self._settled.notify_all()
        self._threads[1].join(5)
        if self._sock:
            self._sock.close()


class _EndpointOptions:
    """EndpointExecutor.options(): submit and map with these options."""

    def __init__(self, ex, opts):
        self._ex, self._opts = ex, dict(opts)

    def options(self, **more):
        return _EndpointOptions(self._ex, dict(self._opts, **more))

    def submit(self, fn, /, *args, **kwargs):
        return self._ex._submit(self._opts, fn, args, kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        return self._ex._map(self._opts, fn, iterables, timeout, chunksize)


# ------------------------------------------------------------------ main

def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(
        prog="python3 -m xylem.endpoint",
        description="The session server that `xylem endpoint` starts for "
        "a user's Python calls (docs/endpoint.md).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve DIR/session.sock")
    s.add_argument("dir")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--idle-exit", type=int, default=300)
    s.add_argument("--cores-per-worker", type=int, default=1)
    s.add_argument("--limit", action="append", default=[],
                   help="KEY=VALUE: max_queued, max_result_bytes, "
                   "retention, max_workers, max_cores")
    s.add_argument("--pool", action="append", default=[],
                   help="NAME=PROVIDER CORES MAX_WORKERS [USER...]: a pool "
                   "users may ask for")
    s.add_argument("--option", action="append", default=[],
                   help="NAME=SPEC: an option users may set, and its type")
    a = ap.parse_args(argv)
    os.umask(0o077)
    Server(a.dir, workers=a.workers, idle_exit=a.idle_exit,
           limits=Limits(a.limit, a.option, a.pool),
           cores_per_worker=a.cores_per_worker).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
