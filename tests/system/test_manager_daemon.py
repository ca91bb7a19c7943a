"""`xylem manager`, a standing manager, and `xylem cwl --manager`, a client
that submits to it (docs/architecture.md, "Clients"). No filesystem is
shared in spirit: the client's inputs reach the manager through the
client's transfer server, and the outputs come back through the
manager's. The tests check the round trip (twice, the second time with
the inputs already held), a failing tool, a wrong secret, a client killed
mid-task, and a malformed SUBMIT."""

import json
import os
import signal
import socket
import struct
import subprocess
import textwrap

import pytest

from helpers import SLOW, wait_for
from test_protocol import (MsgMac, auth_frame, closed_by_manager, connect,
                           frame, read_challenge, recv_frame, recv_tagged,
                           send_tagged)

TIMEOUT = 60 * SLOW
ROLE_CLIENT = 4
AUTH_OK, SUBMIT, RESULT = 3, 40, 41


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def standing(xylem, secret_file):
    """`xylem manager --workers 1`; returns (proc, port)."""
    p = xylem.start("manager", "--workers", 1, "--port", 0,
                    "--secret-file", secret_file)
    m = p.wait_line(r"listening on port (\d+)", 30)
    port = int(m.group(1))
    p.wait_line(r"worker \S+ ready", 30)
    return p, port


def cwl(xylem_bin, port, secret_file, *args, env=None):
    return subprocess.run(
        [xylem_bin, "cwl", "--manager", f"127.0.0.1:{port}",
         "--secret-file", secret_file, *map(str, args)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env)


def cat_tool(tmp_path):
    """A tool that reads a File and a file inside a Directory."""
    return write(tmp_path / "cat.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [cat]
        inputs:
          f: {type: File, inputBinding: {position: 1}}
          d: {type: Directory}
        arguments:
          - {valueFrom: $(inputs.d.path)/inner.txt, position: 2}
        stdout: both.txt
        outputs:
          both: {type: stdout}
        """)


def test_round_trip_twice(xylem_bin, standing, secret_file, tmp_path):
    mgr, port = standing
    tool = cat_tool(tmp_path)
    (tmp_path / "data.txt").write_text("from a file\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner.txt").write_text("from a directory\n")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "f": {"class": "File", "path": str(tmp_path / "data.txt")},
        "d": {"class": "Directory", "path": str(tmp_path / "dir")}}))
    for run in (1, 2):
        out = tmp_path / f"out{run}"
        r = cwl(xylem_bin, port, secret_file, "--quiet", "--outdir", out,
                tool, job)
        assert r.returncode == 0, r.stderr + mgr.output
        both = json.loads(r.stdout)["both"]
        assert both["class"] == "File"
        assert both["path"] == str(out / "both.txt")
        text = (out / "both.txt").read_text()
        assert text == "from a file\nfrom a directory\n"
        assert both["size"] == len(text)
        assert sorted(os.listdir(out)) == ["both.txt"]
    # The second run found its inputs held: each was fetched once.
    fetched = [l for l in mgr.output.splitlines() if " fetched (" in l]
    assert len([l for l in fetched if "/data.txt " in l]) == 1, mgr.output
    assert len([l for l in fetched if "/dir " in l]) == 1, mgr.output
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(30) == 0, mgr.output


def test_failing_tool(xylem_bin, standing, secret_file, tmp_path):
    _, port = standing
    tool = write(tmp_path / "fail.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "echo doomed >&2; exit 3"]
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, port, secret_file, "--outdir", tmp_path / "o", tool)
    assert r.returncode == 1, r.stderr
    assert "doomed" in r.stderr
    assert r.stdout == ""


def test_wrong_secret(xylem_bin, standing, tmp_path):
    mgr, port = standing
    bad = tmp_path / "bad-secret"
    bad.write_text("not the secret\n")
    bad.chmod(0o600)
    tool = write(tmp_path / "t.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [echo]
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, port, bad, tool)
    assert r.returncode == 1
    assert "refused the secret" in r.stderr, r.stderr
    assert r.stdout == ""
    assert mgr.p.poll() is None


def test_killed_client(xylem, xylem_bin, standing, secret_file, tmp_path):
    mgr, port = standing
    slow = write(tmp_path / "slow.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sleep, "60"]
        inputs: []
        outputs: []
        """)
    client = xylem.start("cwl", "--manager", f"127.0.0.1:{port}",
                         "--secret-file", secret_file, slow)
    mgr.wait_line(r"client \S+: task 1 runs as", 30)
    wait_for(lambda: status(xylem_bin, port, secret_file)["running"] == 1,
             30, what="the task to run")
    client.p.send_signal(signal.SIGKILL)
    mgr.wait_line(r"client \S+ left .*its tasks are cancelled", 30)
    # The running task was cancelled, and the manager goes on.
    wait_for(lambda: status(xylem_bin, port, secret_file)["running"] == 0,
             30, what="the task to be cancelled")
    tool = write(tmp_path / "echo.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [echo, still here]
        inputs: []
        stdout: said.txt
        outputs:
          said: {type: stdout}
        """)
    out = tmp_path / "out"
    r = cwl(xylem_bin, port, secret_file, "--outdir", out, tool)
    assert r.returncode == 0, r.stderr + mgr.output
    assert (out / "said.txt").read_text() == "still here\n"
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(30) == 0, mgr.output


def status(xylem_bin, port, secret_file):
    r = subprocess.run([xylem_bin, "status", f"127.0.0.1:{port}",
                        "--secret-file", secret_file, "--json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["tasks"]


def test_malformed_submit(xylem_bin, plain_standing, secret_file,
                          tmp_path):
    """A SUBMIT with an empty command closes that connection, with the
    reason in the manager's log, and nothing else."""
    mgr, port = plain_standing
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    s = connect(port)
    nonce_s, nonce_c = read_challenge(s), os.urandom(32)
    s.sendall(auth_frame(secret, ROLE_CLIENT, nonce_s, nonce_c))
    mtype, _ = recv_frame(s)
    assert mtype == AUTH_OK
    out = MsgMac(secret, b"c", nonce_s, nonce_c)

    def string(b):
        return struct.pack("<I", len(b)) + b
    payload = (struct.pack("<Q", 1) + string(b"") + string(b"")
               + struct.pack("<IQQIQ", 1, 0, 0, 0, 0)
               + struct.pack("<III", 0, 0, 0) + struct.pack("<H", 0)
               + bytes(32))  # no key
    send_tagged(s, out, frame(SUBMIT, payload))
    closed, _ = closed_by_manager(s)
    assert closed
    mgr.wait_line(r"closing client \S+: SUBMIT with an empty command", 10)
    assert mgr.p.poll() is None
    r = cwl(xylem_bin, port, secret_file, "--no-tls", "--outdir", tmp_path / "o",
            write(tmp_path / "t.cwl", """
                cwlVersion: v1.2
                class: CommandLineTool
                baseCommand: ["true"]
                inputs: []
                outputs: []
                """))
    assert r.returncode == 0, r.stderr
    mgr.signal(signal.SIGTERM)
    assert mgr.wait(30) == 0, mgr.output


def test_manager_stops_on_signal(xylem, secret_file):
    p = xylem.start("manager", "--workers", 1, "--secret-file", secret_file)
    p.wait_line(r"worker \S+ ready", 30)
    p.signal(signal.SIGTERM)
    assert p.wait(30) == 0, p.output
    assert "stopping on signal 15" in p.output


def test_help(xylem_bin):
    r = subprocess.run([xylem_bin, "manager", "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0
    assert "--workers" in r.stdout and "--secret-file" in r.stdout
    r = subprocess.run([xylem_bin, "manager", "--workers", "x"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2


@pytest.fixture
def plain_standing(xylem, secret_file):
    """`xylem manager --workers 1 --no-tls`, for the raw frames below,
    which the test's Python speaks without TLS; returns (proc, port)."""
    p = xylem.start("manager", "--workers", 1, "--port", 0,
                    "--secret-file", secret_file, "--no-tls")
    m = p.wait_line(r"listening on port (\d+)", 30)
    port = int(m.group(1))
    p.wait_line(r"worker \S+ ready", 30)
    return p, port


def client_socket(port, secret_file):
    """A raw client connection, authenticated with role CLIENT."""
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    s = connect(port)
    nonce_s, nonce_c = read_challenge(s), os.urandom(32)
    s.sendall(auth_frame(secret, ROLE_CLIENT, nonce_s, nonce_c))
    mtype, _ = recv_frame(s)
    assert mtype == AUTH_OK
    # Frames from here on carry MACs (no TLS): one per direction.
    return (s, MsgMac(secret, b"c", nonce_s, nonce_c),
            MsgMac(secret, b"s", nonce_s, nonce_c))


def test_unreachable_input(plain_standing, secret_file):
    """An input the manager cannot fetch from the client ends the task as
    INPUT_MISSING, in a RESULT, and the connection stays open."""
    mgr, port = plain_standing
    s, out, into = client_socket(port, secret_file)
    gone = socket.socket()
    gone.bind(("127.0.0.1", 0))
    dead_port = gone.getsockname()[1]
    gone.close()

    def string(b):
        return struct.pack("<I", len(b)) + b
    # kind 0, size 5; from 0 (the client's), no ref, no unpack (v16)
    inp = string(b"in.txt") + os.urandom(32) + struct.pack("<BQB", 0, 5, 0) \
        + string(b"") + b"\0"
    payload = (struct.pack("<Q", 9) + string(b"") + string(b"cat in.txt")
               + struct.pack("<IQQIQ", 1, 0, 0, 0, 0)
               + struct.pack("<II", 0, 1) + inp + struct.pack("<I", 0)
               + struct.pack("<H", dead_port) + bytes(32))  # no key
    send_tagged(s, out, frame(SUBMIT, payload))
    while True:
        mtype, body = recv_tagged(s, into)
        if mtype == RESULT:
            break
    cid, result, code, n = struct.unpack("<QBiI", body[:17])
    message = body[17:17 + n].decode()
    assert (cid, result, code) == (9, 4, -1)
    assert "in.txt could not be fetched from the client" in message
    s.close()
    assert mgr.p.poll() is None
