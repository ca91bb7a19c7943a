"""TLS on every channel (docs/security.md): nothing a workflow says or
moves crosses loopback in plain text (commands, inputs, outputs, files
between workers); a worker refuses a manager whose
certificate it cannot verify (another CA, expired, another name, none);
a relay that changes one byte after the handshake gets the connection
dropped and nothing run; a relay that ends TLS on both sides cannot
forward the proof of the secret (channel binding)."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import tls_ca
from helpers import task, wait_for, write_workflow

MARKER = "xy-wire-marker-5c2e9a"


def marker_workflow(tmp_path, n=3):
    """Tasks whose commands, inputs and outputs carry MARKER: an input
    from the manager, large enough to come in chunks, outputs the manager
    fetches from the workers, and a last task that reads them all (from
    the other worker, or the manager)."""
    out = tmp_path / "out"
    big = tmp_path / "big.txt"
    line = f"{MARKER} in a file body\n".encode()
    big.write_bytes(line * (3 * 1024 * 1024 // len(line)))
    tasks = [task(f"t{i}", f"m={MARKER}-{i}; head -c 100 big > out;"
                  " echo $m >> out",
                  inputs=[(big, "big")],
                  outputs=[(out / str(i), "out")]) for i in range(n)]
    tasks.append(task("all", "cat " + " ".join(f"in{i}" for i in range(n))
                      + " > out",
                      inputs=[(out / str(i), f"in{i}") for i in range(n)],
                      outputs=[(out / "all", "out")]))
    return write_workflow(tmp_path / "wf.json", tasks), out


# ------------------------------------------------------------ capture

def capture(tmp_path, run):
    """The bytes tcpdump saw on loopback while run() ran."""
    if not shutil.which("tcpdump") or os.geteuid() != 0:
        pytest.skip("tcpdump (and root) needed to capture loopback")
    pcap = tmp_path / "lo.pcap"
    p = subprocess.Popen(["tcpdump", "-Z", "root", "-i", "lo", "-U", "-s", "0", "-w",
                          str(pcap), "tcp"], stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stderr.readline()  # "listening on lo, ..."
        assert "listening" in line, line
        time.sleep(1)  # it says so a little before it captures
        run()
        time.sleep(1)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(10)
    return pcap.read_bytes()


def test_marker_never_on_the_wire(xylem, tmp_path):
    wf, out = marker_workflow(tmp_path)

    def run():
        r = xylem.run("run", wf, "--workers", "2", timeout=60)
        assert r.returncode == 0, r.output

    wire = capture(tmp_path, run)
    assert len(wire) > 2000  # the run was seen
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2", "all"]
    got = (out / "all").read_text()
    assert all(f"{MARKER}-{i}" in got for i in range(3)), got
    assert f"{MARKER} in a file body" in got, got
    assert MARKER.encode() not in wire


def test_marker_on_the_wire_without_tls(xylem, tmp_path):
    """The same capture sees the marker in plain mode, so the test above
    could fail; and both ends warn about it."""
    wf, out = marker_workflow(tmp_path)
    result = {}

    def run():
        result["r"] = xylem.run("run", wf, "--workers", "2", "--no-tls",
                                timeout=60)

    wire = capture(tmp_path, run)
    r = result["r"]
    assert r.returncode == 0, r.output
    assert MARKER.encode() in wire
    assert "TLS is OFF" in r.output


# ------------------------------------------------------ certificates

CA_CONF = """
[ ca ]
default_ca = own
[ own ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
unique_subject = no
[ any ]
commonName = supplied
[ ext ]
subjectAltName = {san}
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
"""


def sign_server(ca_dir, out_dir, san="IP:127.0.0.1", start=None, end=None):
    """A server key and certificate for san, signed by the CA in ca_dir,
    into out_dir (server.key, server.crt, and the CA's ca.crt)."""
    os.makedirs(out_dir, exist_ok=True)
    work = os.path.join(out_dir, "work")
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(work, "ca.cnf")
    with open(conf, "w") as f:
        f.write(CA_CONF.format(d=work, san=san))
    key = os.path.join(out_dir, "server.key")
    csr = os.path.join(work, "server.csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", csr, "-subj", "/CN=xylem test server"],
                   check=True, capture_output=True)
    dates = ["-startdate", start or "20200101000000Z",
             "-enddate", end or "20991231000000Z"]
    subprocess.run(["openssl", "ca", "-batch", "-config", conf, "-cert",
                    os.path.join(ca_dir, "ca.crt"), "-keyfile",
                    os.path.join(ca_dir, "ca.key"), "-in", csr, "-out",
                    os.path.join(out_dir, "server.crt"), "-extensions",
                    "ext", "-notext", *dates],
                   check=True, capture_output=True)
    shutil.copy(os.path.join(ca_dir, "ca.crt"),
                os.path.join(out_dir, "ca.crt"))
    shutil.rmtree(work)
    return out_dir


def refused(xylem, port, secret_file, *extra):
    """Starts a worker that must give up: its exit status and output."""
    w = xylem.worker(port, secret_file, 1, "--connect-timeout", "0", *extra)
    rc = w.wait(30)
    return rc, w.output


def test_worker_refuses_a_manager_from_another_ca(xylem, tmp_path,
                                                  secret_file):
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file)
    other = tls_ca.make_ca(str(tmp_path / "other"), cn="another CA")
    rc, output = refused(xylem, port, secret_file, "--tls-ca", other)
    assert rc == 1, output
    assert "certificate verify failed" in output, output
    assert not out.exists() or not list(out.iterdir())
    # The manager's own CA is accepted, and the run finishes.
    xylem.worker(port, secret_file, 1)
    assert mgr.wait(60) == 0, mgr.output


def test_worker_refuses_an_expired_certificate(xylem, tmp_path,
                                               secret_file):
    ca = str(tmp_path / "ca")
    tls_ca.make_ca(ca)
    d = sign_server(ca, str(tmp_path / "tls"), start="20200101000000Z",
                    end="20200201000000Z")
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file, "--tls-dir", d)
    rc, output = refused(xylem, port, secret_file, "--tls-ca",
                         os.path.join(ca, "ca.crt"))
    assert rc == 1, output
    assert "certificate has expired" in output, output


def test_worker_checks_the_name_and_takes_a_given_certificate(
        xylem, tmp_path, secret_file):
    """A certificate of the user's own (docs/security.md): one for another
    name is refused; one for 127.0.0.1 is used, and the run finishes."""
    ca = str(tmp_path / "ca")
    tls_ca.make_ca(ca)
    wrong = sign_server(ca, str(tmp_path / "wrong"), san="DNS:elsewhere.test")
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file, "--tls-dir", wrong)
    rc, output = refused(xylem, port, secret_file, "--tls-ca",
                         os.path.join(ca, "ca.crt"))
    assert rc == 1, output
    assert "mismatch" in output, output
    mgr.kill()
    right = sign_server(ca, str(tmp_path / "right"))
    mgr, port = xylem.manager(wf, secret_file, "--tls-dir", right)
    xylem.worker(port, secret_file, 1, "--tls-ca",
                 os.path.join(ca, "ca.crt"))
    assert mgr.wait(60) == 0, mgr.output


def test_tls_worker_and_plain_manager_refuse_each_other(xylem, tmp_path,
                                                        secret_file):
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file, "--no-tls")
    rc, output = refused(xylem, port, secret_file)
    assert rc == 1, output
    assert "does not speak TLS" in output, output
    mgr.kill()
    mgr, port = xylem.manager(wf, secret_file)
    env = {k: v for k, v in xylem.env.items() if k != "XYLEM_TLS_CA"}
    w = xylem.start("worker", f"127.0.0.1:{port}", "--secret-file",
                    secret_file, "--connect-timeout", "0", "--no-tls",
                    env=env)
    assert w.wait(30) == 1, w.output
    assert "speaks TLS" in w.output, w.output
    assert "TLS is OFF" in w.output, w.output


def test_worker_without_a_ca_is_told_what_to_give(xylem, tmp_path,
                                                  secret_file):
    env = {k: v for k, v in xylem.env.items() if k != "XYLEM_TLS_CA"}
    r = xylem.run("worker", "127.0.0.1:1", "--secret-file", secret_file,
                  env=env)
    assert r.returncode == 2, r.output
    assert "--tls-ca" in r.output and "--no-tls" in r.output, r.output


def test_wrong_secret_refused_inside_tls(xylem, tmp_path, secret_file):
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file)
    bad = tmp_path / "bad"
    bad.write_text("not the secret\n")
    bad.chmod(0o600)
    rc, output = refused(xylem, port, str(bad))
    assert rc == 1, output
    assert "bad secret" in output, output


# ------------------------------------------------------------ relays

class Relay:
    """A TCP relay on loopback to 127.0.0.1:target. With flip, it flips
    one byte in the third encrypted record (TLS type 23) each worker
    connection sends: the client's Finished is the first, so the third
    is past the handshake. With tls=(cert, key, ca), it ends TLS on both
    sides instead, and forwards the plain bytes."""

    def __init__(self, target, flip=False, tls=None):
        self.target = target
        self.flip = flip
        self.tls = tls
        self.flipped = 0
        self.conns = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
                if self.tls:
                    cert, key, ca = self.tls
                    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    sctx.load_cert_chain(cert, key)
                    c = sctx.wrap_socket(c, server_side=True)
                    cctx = ssl.create_default_context(cafile=ca)
                    u = cctx.wrap_socket(u, server_hostname="127.0.0.1")
            except (OSError, ssl.SSLError):
                c.close()
                continue
            threading.Thread(target=self._pump, args=(c, u, self.flip),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False),
                             daemon=True).start()

    def _pump(self, src, dst, flip):
        buf = b""
        records = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not flip:
                    dst.sendall(data)
                    continue
                buf += data
                # Whole records only, so that the flip lands in a body.
                while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(
                        buf[3:5], "big"):
                    n = 5 + int.from_bytes(buf[3:5], "big")
                    rec = bytearray(buf[:n])
                    buf = buf[n:]
                    if rec[0] == 23:
                        records += 1
                        if records == 3:
                            rec[5 + (n - 5) // 2] ^= 0x01
                            self.flipped += 1
                    dst.sendall(bytes(rec))
        except (OSError, ssl.SSLError):
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()


def test_relay_that_flips_a_byte_gets_nothing_run(xylem, tmp_path,
                                                  secret_file):
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file)
    relay = Relay(port, flip=True)
    try:
        w = xylem.worker(relay.port, secret_file, 1, "--connect-timeout",
                         "4")
        wait_for(lambda: relay.flipped >= 1, 20, what="a flipped byte")
        assert w.wait(30) == 1, w.output
        assert not out.exists() or not list(out.iterdir())
        assert mgr.p.poll() is None
        # The manager saw the record fail its authentication.
        wait_for(lambda: "bad record mac" in mgr.output.lower()
                 or "decrypt" in mgr.output.lower(), 10,
                 what="the manager's TLS error")
    finally:
        relay.close()
    # The same relay, flipping nothing, carries a whole run: the test
    # above would see a run if the flip went unnoticed.
    relay = Relay(port)
    try:
        xylem.worker(relay.port, secret_file, 1)
        assert mgr.wait(60) == 0, mgr.output
    finally:
        relay.close()


def test_relay_ending_tls_cannot_forward_the_proof(xylem, tmp_path,
                                                   secret_file):
    """A relay with a certificate the worker trusts (signed by the same
    CA) and a TLS connection of its own to the manager: the proofs of
    the secret are bound to each TLS channel, so forwarding them fails."""
    ca_dir = os.path.dirname(os.environ["XYLEM_TLS_CA"])
    d = sign_server(ca_dir, str(tmp_path / "relay"))
    wf, out = marker_workflow(tmp_path, 1)
    mgr, port = xylem.manager(wf, secret_file)
    relay = Relay(port, tls=(os.path.join(d, "server.crt"),
                             os.path.join(d, "server.key"),
                             os.environ["XYLEM_TLS_CA"]))
    try:
        rc, output = refused(xylem, relay.port, secret_file)
        assert relay.conns >= 1
        assert rc == 1, output
        assert "secret" in output, output
        assert not out.exists() or not list(out.iterdir())
    finally:
        relay.close()


def test_ca_files_private_and_kept_beside_the_journal(xylem, tmp_path):
    """Without XYLEM_TLS_DIR, a run on a journal keeps its CA in
    JOURNAL/tls (0700, files 0600), and the next run on it uses the same
    CA, so that workers that outlive a manager can verify the next."""
    env = {k: v for k, v in xylem.env.items()
           if k not in ("XYLEM_TLS_DIR", "XYLEM_TLS_CA")}
    wf, out = marker_workflow(tmp_path, 1)
    journal = tmp_path / "journal"
    r = xylem.run("run", wf, "--workers", "1", "--journal", journal,
                  env=env, timeout=60)
    assert r.returncode == 0, r.output
    tls = journal / "tls"
    assert (tls.stat().st_mode & 0o777) == 0o700
    for f in ("ca.crt", "ca.key"):
        assert ((tls / f).stat().st_mode & 0o777) == 0o600, f
    ca = (tls / "ca.crt").read_bytes()
    r = xylem.run("run", wf, "--workers", "1", "--journal", journal,
                  env=env, timeout=60)
    assert r.returncode == 0, r.output
    assert (tls / "ca.crt").read_bytes() == ca
    assert not (tls / "server.key").exists()  # the server's key: memory


# ------------------------------------------- --no-tls: MACs on messages

class FrameRelay:
    """A plain TCP relay on loopback to 127.0.0.1:target for --no-tls
    connections. It reads the manager's frames (u32 length, u16 type,
    u16 flags, payload; after AUTH_OK each followed by its 16-byte tag)
    and, in the first TASK of each connection, flips one payload byte
    (mode "flip") or sends the frame and its tag twice ("replay");
    mode None forwards everything as it is."""

    TASK, AUTH_OK = 11, 3

    def __init__(self, target, mode=None):
        self.target, self.mode = target, mode
        self.done = 0  # TASKs flipped or replayed
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            threading.Thread(target=self._frames, args=(u, c),
                             daemon=True).start()
            threading.Thread(target=self._raw, args=(c, u),
                             daemon=True).start()

    @staticmethod
    def _end(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _raw(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._end(src, dst)

    def _frames(self, src, dst):
        buf, tagged, touched = b"", False, False
        try:
            while data := src.recv(65536):
                buf += data
                while len(buf) >= 8:
                    n = 8 + int.from_bytes(buf[:4], "little")
                    typ = int.from_bytes(buf[4:6], "little")
                    n += 16 if tagged else 0
                    if len(buf) < n:
                        break
                    frame, buf = bytearray(buf[:n]), buf[n:]
                    out = bytes(frame)
                    if typ == self.TASK and self.mode and not touched:
                        touched = True
                        self.done += 1
                        if self.mode == "flip":
                            frame[8 + (n - 24) // 2] ^= 0x01
                            out = bytes(frame)
                        else:
                            out = bytes(frame) * 2
                    dst.sendall(out)
                    tagged = tagged or typ == self.AUTH_OK
        except OSError:
            pass
        self._end(src, dst)

    def close(self):
        self.sock.close()


def ran_workflow(tmp_path):
    """One task that leaves a file where the test looks, when it runs."""
    ran = tmp_path / "ran"
    ran.mkdir()
    return write_workflow(tmp_path / "wf.json", [
        task("t", f"touch {ran}/$$; echo ok > out",
             outputs=[(tmp_path / "out.txt", "out")])]), ran


def test_no_tls_relay_that_flips_a_byte_gets_nothing_run(xylem, tmp_path,
                                                         secret_file):
    wf, ran = ran_workflow(tmp_path)
    mgr, port = xylem.manager(wf, secret_file, "--no-tls")
    relay = FrameRelay(port, "flip")
    try:
        w = xylem.worker(relay.port, secret_file, 1, "--no-tls",
                         "--connect-timeout", "4")
        wait_for(lambda: relay.done >= 1, 20, what="a flipped TASK")
        wait_for(lambda: "failed its MAC" in w.output, 10,
                 what="the worker's refusal")
        assert re.search(r"message \d+ \(TASK\) failed its MAC", w.output)
        time.sleep(1)
        assert not list(ran.iterdir()), w.output  # nothing ran
        assert mgr.p.poll() is None
        w.kill()
    finally:
        relay.close()
    # The same relay, changing nothing, carries the whole run: the test
    # above would see a run if the relay or the flip were off.
    relay = FrameRelay(port)
    try:
        xylem.worker(relay.port, secret_file, 1, "--no-tls")
        assert mgr.wait(60) == 0, mgr.output
        assert len(list(ran.iterdir())) == 1
    finally:
        relay.close()


def test_no_tls_relay_that_replays_a_message_is_refused(xylem, tmp_path,
                                                        secret_file):
    wf, ran = ran_workflow(tmp_path)
    mgr, port = xylem.manager(wf, secret_file, "--no-tls")
    relay = FrameRelay(port, "replay")
    try:
        w = xylem.worker(relay.port, secret_file, 1, "--no-tls",
                         "--connect-timeout", "4")
        wait_for(lambda: relay.done >= 1, 20, what="a replayed TASK")
        wait_for(lambda: "failed its MAC" in w.output, 10,
                 what="the worker's refusal")
        assert re.search(r"message \d+ \(TASK\) failed its MAC: changed,"
                         r" replayed or out of order", w.output), w.output
        assert "closing" in w.output
        w.kill()
    finally:
        relay.close()
