"""Where `xylem run` listens: on loopback when it serves only the local
workers it starts, on the address --host names, and on every interface
when workers from elsewhere may come (--workers 0, --port or
--secret-file); it says where at info level. Each run's task waits for a
flag file, so that the test can read the manager's listening sockets
from /proc while it runs."""

import os
import re
import socket
import struct
from pathlib import Path

from helpers import task, wait_for, write_workflow

LISTEN = "0A"


def listening(pid):
    """The (address, port) of every TCP socket that pid listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != LISTEN or f[9] not in inodes:
                continue
            addr, port = f[1].split(":")
            if len(addr) == 8:
                ip = socket.inet_ntoa(struct.pack("<I", int(addr, 16)))
            else:
                raw = bytes.fromhex(addr)
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(
                    raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((ip, int(port, 16)))
    return found


def waiting_run(xylem, tmp_path, *args):
    """Starts `xylem run` with one task that waits for tmp_path/go;
    returns the process and its listening sockets once the task runs."""
    flag, started = tmp_path / "go", tmp_path / "started"
    wf = write_workflow(tmp_path / "wf.json", [task(
        "wait", f"touch {started}; for i in $(seq 600); do test -e {flag}"
        " && exit 0; sleep 0.1; done; exit 1")])
    p = xylem.start("run", wf, *args,
                    env=dict(xylem.env, XYLEM_LOG="info"))
    wait_for(started.exists, 30, what="the task to start")
    return p, listening(p.pid)


def said(p):
    """The address and port that the run says it listens on."""
    m = p.wait_line(r"info run: listening on (\S+):(\d+) \(secret ", 10)
    return m.group(1), int(m.group(2))


def finish(p, tmp_path):
    (tmp_path / "go").touch()
    assert p.wait(60) == 0, p.output


def test_local_workers_only_listen_on_loopback(xylem, tmp_path):
    p, socks = waiting_run(xylem, tmp_path, "--workers", 1)
    # The control port and the manager's transfer server, both loopback.
    assert len(socks) >= 2, socks
    assert all(ip == "127.0.0.1" for ip, _ in socks), socks
    assert said(p) in socks, (p.output, socks)
    # The secret file is named, the secret itself never printed.
    secret = Path(re.search(r"\(secret file (\S+)\)", p.output).group(1))
    assert secret.read_text().strip() not in p.output
    finish(p, tmp_path)


def test_host_is_honoured(xylem, tmp_path):
    """Another loopback address: the manager listens there, and its
    local workers reach it there."""
    p, socks = waiting_run(xylem, tmp_path, "--workers", 1,
                           "--host", "127.0.0.2")
    assert len(socks) >= 2, socks
    assert all(ip == "127.0.0.2" for ip, _ in socks), socks
    assert said(p) in socks, (p.output, socks)
    finish(p, tmp_path)


def test_workers_from_elsewhere_listen_everywhere(xylem, tmp_path,
                                                  secret_file):
    p, socks = waiting_run(xylem, tmp_path, "--workers", 1,
                           "--secret-file", secret_file)
    host, port = said(p)
    assert host == "0.0.0.0", p.output
    assert ("0.0.0.0", port) in socks, socks
    finish(p, tmp_path)


def test_host_on_every_interface_by_name(xylem, tmp_path):
    p, socks = waiting_run(xylem, tmp_path, "--workers", 1,
                           "--host", "0.0.0.0")
    assert said(p) in socks, (p.output, socks)
    assert all(ip == "0.0.0.0" for ip, _ in socks), socks
    finish(p, tmp_path)
