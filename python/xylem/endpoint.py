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

FRAME = struct.Struct(">I")
FRAME_MAX = 64 << 20
ASK_TIMEOUT = 30.0


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


def _dumps_result(ok, value):
    """A call's outcome as bytes: the value, or the exception (one that
    does not pickle, or is over the frame's limit, becomes a RuntimeError
    that says so)."""
    import cloudpickle
    what = "result" if ok else "exception"
    try:
        data = cloudpickle.dumps(value)
    except Exception as e:  # noqa: BLE001 - any pickling failure
        return False, cloudpickle.dumps(RuntimeError(
            "the call's %s could not be pickled: %s" % (what, e)))
    if len(data) > FRAME_MAX - 4096:
        return False, cloudpickle.dumps(RuntimeError(
            "the call's %s is %d bytes pickled, over the endpoint's limit"
            " of %d" % (what, len(data), FRAME_MAX - 4096)))
    return ok, data


# ------------------------------------------------------------------ server

class _Conn:
    """A client's connection and its writer thread: frames are queued
    and written there, so that a client that stops reading holds up
    nobody but itself."""

    def __init__(self, sock):
        import queue
        self.sock = sock
        self.queue = queue.SimpleQueue()
        threading.Thread(target=self._write, daemon=True).start()

    def send(self, obj):
        self.queue.put(_frame(obj))

    def close(self):
        self.queue.put(None)

    def _write(self):
        while True:
            data = self.queue.get()
            if data is None:
                break
            try:
                self.sock.sendall(data)
            except OSError:
                break
        self.sock.close()


class _Session:
    def __init__(self, sid, path):
        self.id = sid
        self.calls = {}       # seq -> (ok, data) or None while it runs
        self.payloads = {}    # seq -> payload, for calls still running
        self.conn = None
        self.log = open(path, "ab", buffering=0)

    def record(self, *rec):
        self.log.write(_frame(rec))


class Server:
    """The session server: one per user, started by the endpoint."""

    def __init__(self, directory, workers=1, idle_exit=300):
        from .executor import Executor
        self.dir = os.path.abspath(directory)
        os.makedirs(os.path.join(self.dir, "sessions"), 0o700,
                    exist_ok=True)
        self.idle_exit = idle_exit
        self.lock = threading.Lock()
        self.sessions = {}
        self.busy_since = time.monotonic()
        # The administrator's PYTHONPATH (the endpoint's `environment`)
        # is where this package and cloudpickle are: calls need both.
        self.ex = Executor(workers=workers,
                           journal=os.path.join(self.dir, "journal"),
                           pythonpath=os.environ.get("PYTHONPATH"))
        for name in sorted(os.listdir(os.path.join(self.dir, "sessions"))):
            if name.endswith(".log"):
                self._replay(name[:-4])
        path = os.path.join(self.dir, "session.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(128)
        self.sock.settimeout(0.5)

    def _log_path(self, sid):
        return os.path.join(self.dir, "sessions", sid + ".log")

    def _replay(self, sid):
        """Reads a session's log back; a torn last frame is cut off."""
        path = self._log_path(sid)
        calls, payloads, good = {}, {}, 0
        with open(path, "rb") as f:
            data = f.read()
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
            if rec[0] == "submit":
                calls.setdefault(rec[1], None)
                payloads[rec[1]] = rec[2]
            elif rec[0] == "result":
                calls[rec[1]] = (rec[2], rec[3])
                payloads.pop(rec[1], None)
            elif rec[0] == "ack":
                for seq in [s for s in calls if s <= rec[1]
                            and calls[s] is not None]:
                    del calls[seq]
        if good < len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
        s = _Session(sid, path)
        s.calls, s.payloads = calls, payloads
        self.sessions[sid] = s
        for seq, payload in sorted(payloads.items()):
            self._run(s, seq, payload)

    def _run(self, s, seq, payload):
        try:
            fn, args, kwargs = pickle.loads(payload)
            fut = self.ex.submit(fn, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the call cannot start
            fut = concurrent.futures.Future()
            fut.set_exception(e)
        fut.add_done_callback(lambda f: self._done(s, seq, f))

    def _done(self, s, seq, fut):
        try:
            ok, data = _dumps_result(True, fut.result())
        except BaseException as e:  # noqa: BLE001 - the call's own failure
            ok, data = _dumps_result(False, e)
        with self.lock:
            s.calls[seq] = (ok, data)
            s.payloads.pop(seq, None)
            s.record("result", seq, ok, data)
            conn = s.conn
            self.busy_since = time.monotonic()
        if conn:
            self._send(conn, ("result", seq, ok, data))

    @staticmethod
    def _send(conn, obj):
        conn.send(obj)

    def _hello(self, conn, sid):
        with self.lock:
            if sid is None:
                sid = uuid.uuid4().hex
                s = self.sessions[sid] = _Session(sid, self._log_path(sid))
            s = self.sessions.get(sid) if isinstance(sid, str) else None
            if s is None:
                self._send(conn, ("error", "no session %r here (your "
                                  "sessions: ex.session of each)" % (sid,)))
                return None
            if s.conn is not None:
                self._send(conn, ("error", "session %s is attached to "
                                  "another client now" % sid))
                return None
            s.conn = conn
            self._send(conn, ("welcome", sid, sorted(s.calls)))
            done = [(seq, r) for seq, r in sorted(s.calls.items()) if r]
        for seq, (ok, data) in done:
            self._send(conn, ("result", seq, ok, data))
        return s

    def _serve(self, sock):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            sock.close()
            return
        conn = _Conn(sock)
        s = None
        try:
            while True:
                msg = _read_frame(sock)
                if msg[0] == "hello" and s is None:
                    s = self._hello(conn, msg[1])
                    if s is None:
                        return
                elif msg[0] == "submit" and s is not None:
                    seq, payload = msg[1], msg[2]
                    with self.lock:
                        if seq in s.calls:  # sent again after a reconnect
                            self._send(conn, ("accepted", seq))
                            continue
                        s.calls[seq] = None
                        s.payloads[seq] = payload
                        s.record("submit", seq, payload)
                    # Written down: the client may go now.
                    self._send(conn, ("accepted", seq))
                    self._run(s, seq, payload)
                elif msg[0] == "ack" and s is not None:
                    with self.lock:
                        for seq in [q for q, r in s.calls.items()
                                    if q <= msg[1] and r is not None]:
                            del s.calls[seq]
                        s.record("ack", msg[1])
                else:
                    return
        except (ConnectionError, OSError, EOFError, pickle.PickleError):
            pass
        finally:
            with self.lock:
                if s is not None and s.conn is conn:
                    s.conn = None
                self.busy_since = time.monotonic()
            conn.close()

    def _idle(self):
        with self.lock:
            if any(s.conn or s.payloads for s in self.sessions.values()):
                self.busy_since = time.monotonic()
                return False
            return time.monotonic() - self.busy_since >= self.idle_exit

    def serve_forever(self):
        print("xylem endpoint session server: serving %s" %
              os.path.join(self.dir, "session.sock"), file=sys.stderr,
              flush=True)
        try:
            while not (self.idle_exit and self._idle()):
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True).start()
            print("xylem endpoint session server: idle for %d s, stopping"
                  % self.idle_exit, file=sys.stderr, flush=True)
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
        raise PermissionError("the endpoint at %s refused the TLS "
                              "connection: %s" % (where, e)) from None
    except OSError as e:
        raw.close()
        raise ConnectionError("the endpoint at %s closed: %s"
                              % (where, e)) from None
    text = line.decode(errors="replace").strip()
    if not text.startswith("ok "):
        tls.close()
        if text.startswith("error "):
            raise PermissionError("the endpoint refused: " + text[6:])
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
                 tls_cert=None, tls_key=None, tls_ca=None):
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
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.session = session
        self._sock = None
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
            if tries % 25 == 0:
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
                time.sleep(0.02)
        return s

    def _hello(self, s):
        s.sendall(_frame(("hello", self.session)))
        msg = _read_frame(s)
        s.settimeout(None)
        if msg[0] != "welcome":
            s.close()
            raise ValueError(msg[1] if msg[0] == "error" else
                             "unexpected answer %r" % (msg[0],))
        with self._lock:
            self.session = msg[1]
            for seq in msg[2]:
                if seq not in self._futures:
                    self._futures[seq] = concurrent.futures.Future()
                self._unaccepted.discard(seq)
                self._next = max(self._next, seq + 1)
            # What was sent but not answered goes again: the server
            # runs each call number once.
            self._out.extend(_frame(("submit", seq, p))
                             for seq, p in sorted(self._pending.items()))
            self._sock = s
            self._wake.notify_all()

    def _reconnect(self):
        try:
            self._sock.close()  # the server sees us gone, and detaches
        except OSError:
            pass
        while not self._closed:
            try:
                self._connect()
                return True
            except (OSError, ValueError):
                time.sleep(0.2)
        return False

    # -- threads
    def _receive(self):
        while not self._closed:
            sock = self._sock
            try:
                msg = _read_frame(sock)
            except (OSError, EOFError, pickle.PickleError):
                if self._closed or not self._reconnect():
                    return
                continue
            if msg[0] == "accepted":
                with self._lock:
                    self._unaccepted.discard(msg[1])
                    self._wake.notify_all()
                continue
            if msg[0] != "result":
                continue
            _, seq, ok, data = msg
            with self._lock:
                fut = self._futures.setdefault(
                    seq, concurrent.futures.Future())
                self._pending.pop(seq, None)
                self._unaccepted.discard(seq)
                self._wake.notify_all()
            if fut.done():
                continue
            try:
                value = pickle.loads(data)
            except Exception as e:  # noqa: BLE001 - say why, on the future
                ok, value = False, e
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

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

    # -- the Executor interface
    def submit(self, fn, /, *args, **kwargs):
        import cloudpickle
        payload = cloudpickle.dumps((fn, args, kwargs))
        if len(payload) > FRAME_MAX - 4096:
            raise ValueError("the call is %d bytes pickled, over the "
                             "endpoint's limit of %d" % (
                                 len(payload), FRAME_MAX - 4096))
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit after shutdown")
            seq = self._next
            self._next += 1
            fut = self._futures[seq] = concurrent.futures.Future()
            self._pending[seq] = payload
            self._unaccepted.add(seq)
            self._out.append(_frame(("submit", seq, payload)))
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
                self._wake.wait(left if left is not None else 1.0)
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
            concurrent.futures.wait(self.futures())
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
        self._threads[1].join(5)
        if self._sock:
            self._sock.close()


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
    a = ap.parse_args(argv)
    os.umask(0o077)
    Server(a.dir, workers=a.workers, idle_exit=a.idle_exit).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
