"""A fake peer speaks to the manager's port with a raw socket: garbage, an
oversized frame header, a wrong MAC, silence. Each time the manager must
close that connection (principle 8) and go on running tasks for a real
worker afterwards. A correct handshake, done here in Python exactly as
src/common/auth.h and docs/protocol.md describe, checks that the fake peer
speaks the protocol for real, so the refusals are refusals of the fault and
not of a misunderstanding."""

import hashlib
import hmac
import json
import os
import socket
import struct
import time

import pytest

from helpers import task, write_workflow

MAGIC = 0x4D4C5958  # "XYLM"
VERSION = 16
CHALLENGE, AUTH, AUTH_OK, ERROR = 1, 2, 3, 4
STATUS_REQ, STATUS_REPLY = 20, 21
ROLE_STATUS = 2
NONCE = 32


def frame(mtype, payload=b""):
    return struct.pack("<IHH", len(payload), mtype, 0) + payload


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv_frame(s):
    length, mtype, flags = struct.unpack("<IHH", recv_exact(s, 8))
    assert flags == 0
    return mtype, recv_exact(s, length)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.settimeout(15)
    return s


def read_challenge(s):
    mtype, payload = recv_frame(s)
    assert mtype == CHALLENGE
    magic, version = struct.unpack("<IH", payload[:6])
    assert magic == MAGIC and version == VERSION
    nonce_s = payload[6:]
    assert len(nonce_s) == NONCE
    return nonce_s


def mac(secret, which, role, a, b):
    msg = b"xylem-" + which + bytes([role]) + a + b
    return hmac.new(secret, msg, hashlib.sha256).digest()


def _libcrypto():
    """OpenSSL's libcrypto through ctypes: Python's standard library has
    no AES-GCM."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
    lib.EVP_aes_256_gcm.restype = ctypes.c_void_p
    for f in ("EVP_EncryptInit_ex", "EVP_EncryptUpdate",
              "EVP_EncryptFinal_ex", "EVP_CIPHER_CTX_ctrl"):
        getattr(lib, f).argtypes = None
    return lib, ctypes


class MsgMac:
    """One direction's message MACs after the handshake on a connection
    without TLS (src/common/msgmac.h): key HMAC(secret, "xylem-m" dir
    nonce_s nonce_c); each frame followed by its GMAC, the tag of
    AES-256-GCM under that key with nonce 0^4 || u64 seq, no plaintext,
    the frame as associated data."""

    def __init__(self, secret, direction, nonce_s, nonce_c):
        self.key = hmac.new(secret, b"xylem-m" + direction + nonce_s
                            + nonce_c, hashlib.sha256).digest()
        self.seq = 0
        self.lib, self.ct = _libcrypto()

    def tag(self, data):
        lib, ct = self.lib, self.ct
        ctx = ct.c_void_p(lib.EVP_CIPHER_CTX_new())
        iv = b"\0" * 4 + struct.pack("<Q", self.seq)
        n, tag, scratch = ct.c_int(0), ct.create_string_buffer(16), \
            ct.create_string_buffer(16)
        assert lib.EVP_EncryptInit_ex(ctx, ct.c_void_p(lib.EVP_aes_256_gcm()),
                                      None, self.key, iv) == 1
        assert lib.EVP_EncryptUpdate(ctx, None, ct.byref(n), data,
                                     len(data)) == 1
        assert lib.EVP_EncryptFinal_ex(ctx, scratch, ct.byref(n)) == 1
        assert lib.EVP_CIPHER_CTX_ctrl(ctx, 0x10, 16, tag) == 1  # GET_TAG
        lib.EVP_CIPHER_CTX_free(ctx)
        self.seq += 1
        return tag.raw


def send_tagged(s, out, f):
    s.sendall(f + out.tag(f))


def recv_tagged(s, into):
    """A frame after the handshake, its tag checked."""
    mtype, payload = recv_frame(s)
    tag = recv_exact(s, 16)
    assert tag == into.tag(frame(mtype, payload)), "a bad message MAC"
    return mtype, payload


def auth_frame(secret, role, nonce_s, nonce_c, wrong=False):
    m = mac(secret, b"c", role, nonce_s, nonce_c)
    if wrong:
        m = bytes([m[0] ^ 1]) + m[1:]
    return frame(AUTH, struct.pack("<HB", VERSION, role) + nonce_c + m)


def closed_by_manager(s, timeout=15):
    """Reads until EOF (an ERROR frame may come first); True if the manager
    closed the connection within the timeout. Returns the frames seen."""
    s.settimeout(timeout)
    seen = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return True, seen
        except socket.timeout:
            return False, seen
        if not chunk:
            return True, seen
        seen += chunk
    return False, seen


@pytest.fixture
def manager(xylem, tmp_path, secret_file):
    out = tmp_path / "out"
    tasks = [task(f"t{i}", f"echo {i} > out", outputs=[(out / f"{i}", "out")])
             for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    # The frames below are spoken in plain text, which the test's own
    # Python (no TLS exporter) can make: the manager runs without TLS,
    # and so do the real workers that finish its tasks.
    mgr, port = xylem.manager(wf, secret_file, "--no-tls")
    xylem.env = dict(xylem.env, XYLEM_NO_TLS="1")
    xylem.env.pop("XYLEM_TLS_CA", None)
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    return mgr, port, secret, out


def finish_with_real_worker(xylem, mgr, port, secret_file, out):
    xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2"]


def test_correct_handshake_and_status(manager):
    """The positive control: our handshake is accepted, the manager proves
    the secret back, and a status request gets a JSON answer."""
    mgr, port, secret, _ = manager
    s = connect(port)
    nonce_s = read_challenge(s)
    nonce_c = os.urandom(NONCE)
    s.sendall(auth_frame(secret, ROLE_STATUS, nonce_s, nonce_c))
    mtype, payload = recv_frame(s)
    assert mtype == AUTH_OK, payload
    assert payload == mac(secret, b"s", ROLE_STATUS, nonce_c, nonce_s)
    out = MsgMac(secret, b"c", nonce_s, nonce_c)
    into = MsgMac(secret, b"s", nonce_s, nonce_c)
    req = frame(STATUS_REQ)
    s.sendall(req + out.tag(req))
    while True:
        mtype, payload = recv_frame(s)
        tag = recv_exact(s, 16)
        assert tag == into.tag(frame(mtype, payload)), "a bad message MAC"
        if mtype == STATUS_REPLY:
            break
    (n,) = struct.unpack("<I", payload[:4])
    doc = json.loads(payload[4:4 + n])
    assert "tasks" in doc
    s.close()


def test_garbage(xylem, manager, secret_file):
    mgr, port, _, out = manager
    s = connect(port)
    read_challenge(s)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + os.urandom(64))
    closed, _ = closed_by_manager(s)
    assert closed, "the manager kept a connection that sent garbage"
    finish_with_real_worker(xylem, mgr, port, secret_file, out)


def test_oversized_frame_header(xylem, manager, secret_file):
    mgr, port, _, out = manager
    s = connect(port)
    read_challenge(s)
    s.sendall(struct.pack("<IHH", 0xFFFFFFFF, AUTH, 0))
    closed, _ = closed_by_manager(s)
    assert closed, "the manager waited for a 4 GiB frame"
    finish_with_real_worker(xylem, mgr, port, secret_file, out)


def test_wrong_mac(xylem, manager, secret_file):
    mgr, port, secret, out = manager
    s = connect(port)
    nonce_s = read_challenge(s)
    s.sendall(auth_frame(secret, ROLE_STATUS, nonce_s, os.urandom(NONCE),
                         wrong=True))
    closed, seen = closed_by_manager(s)
    assert closed
    # An ERROR frame, never AUTH_OK, came before the close.
    if len(seen) >= 8:
        _, mtype, _ = struct.unpack("<IHH", seen[:8])
        assert mtype == ERROR
    mgr.wait_line(r"bad secret|refused", 10)
    finish_with_real_worker(xylem, mgr, port, secret_file, out)


def test_wrong_mac_as_worker(xylem, manager, secret_file):
    """A fake worker that cannot prove the secret gets no tasks."""
    mgr, port, secret, out = manager
    s = connect(port)
    nonce_s = read_challenge(s)
    s.sendall(auth_frame(b"not the secret", 1, nonce_s, os.urandom(NONCE)))
    closed, seen = closed_by_manager(s)
    assert closed
    assert b"echo" not in seen
    finish_with_real_worker(xylem, mgr, port, secret_file, out)


@pytest.mark.slow
def test_silent_peer_is_dropped(xylem, manager, secret_file):
    """A peer that connects and says nothing is dropped at the handshake
    deadline (10 s)."""
    mgr, port, _, out = manager
    s = connect(port)
    read_challenge(s)
    t0 = time.monotonic()
    closed, _ = closed_by_manager(s, timeout=20)
    elapsed = time.monotonic() - t0
    assert closed, "a silent peer was kept past the handshake deadline"
    assert 5 < elapsed < 15, f"dropped after {elapsed:.1f} s, not ~10 s"
    finish_with_real_worker(xylem, mgr, port, secret_file, out)


def test_many_bad_peers_then_work(xylem, manager, secret_file):
    mgr, port, secret, out = manager
    socks = []
    for i in range(20):
        s = connect(port)
        read_challenge(s)
        s.sendall(os.urandom(16 + i))
        socks.append(s)
    for s in socks:
        closed, _ = closed_by_manager(s)
        assert closed
    finish_with_real_worker(xylem, mgr, port, secret_file, out)
