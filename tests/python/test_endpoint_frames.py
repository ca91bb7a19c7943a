"""The session server's frames to a client (xylem.endpoint._Conn), with
no account or server: held results sent at a reattach go in frames of
several, each within the frame limit, however many there are (one frame
of them all raised past 64 MiB, and the client could never reattach)."""

import pickle
import socket
import struct

from xylem.endpoint import FRAME_MAX, _Conn


def _frames(sock, n):
    got = []
    while len(got) < n:
        head = b""
        while len(head) < 4:
            head += sock.recv(4 - len(head))
        (size,) = struct.unpack(">I", head)
        body = bytearray()
        while len(body) < size:
            body += sock.recv(min(1 << 20, size - len(body)))
        assert size <= FRAME_MAX
        got.append(pickle.loads(bytes(body)))
    return got


def test_held_results_past_the_frame_limit_go_in_several_frames():
    a, b = socket.socketpair()
    try:
        conn = _Conn(a)
        conn.many = True
        blob = b"x" * (9 << 20)
        held = [(seq, True, blob) for seq in range(1, 9)]  # 72 MiB
        conn.results(held)
        frames = _frames(b, 3)
        assert all(f[0] == "results" for f in frames)
        assert [r[0] for f in frames for r in f[1]] == list(range(1, 9))
        assert all(r[2] == blob for f in frames for r in f[1])
    finally:
        a.close()
        b.close()
