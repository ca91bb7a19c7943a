"""The namespace cluster's own checks (hosts reach each other and nothing
else, the rate cap holds both ways, nothing is left behind), and one real
Xylem run across namespaces. See docs/netns.md."""

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import cluster
from cluster import Cluster

HERE = Path(__file__).resolve().parent
PORT = 7000

# Listens on ADDR:PORT; to each connection, sends its own address.
LISTEN = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode()); c.close()
"""

# For each address: "ok" if its listener answers with that address, else
# the errno's name. Prints a JSON object.
PROBE = """
import errno, json, socket, sys
port, out = int(sys.argv[1]), {}
for a in sys.argv[2:]:
    try:
        with socket.create_connection((a, port), timeout=2) as c:
            out[a] = "ok" if c.recv(64).decode() == a else "wrong host"
    except OSError as e:
        out[a] = errno.errorcode.get(e.errno, str(e))
print(json.dumps(out))
"""

# Receives until EOF on ADDR:PORT; prints bytes and seconds from accept.
RECEIVE = """
import json, socket, sys, time
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("listening", flush=True)
c, _ = s.accept(); t0 = time.monotonic(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
print(json.dumps({"bytes": n, "seconds": time.monotonic() - t0}), flush=True)
"""

# Sends N bytes to ADDR:PORT, then closes.
SEND = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
left, buf = int(sys.argv[3]), b"x" * (1 << 20)
while left > 0:
    c.sendall(buf[:left]); left -= min(left, len(buf))
c.close()
"""

# One UDP datagram: received on ADDR:PORT (its size printed), and sent with
# the don't-fragment bit set, so that it crosses whole or not at all.
UDP_RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2]))); print("listening", flush=True)
print("got", len(s.recv(65536)), flush=True)
"""

UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER, IP_PMTUDISC_DO
s.sendto(b"x" * int(sys.argv[3]), (sys.argv[1], int(sys.argv[2])))
"""


def py(*args):
    return [sys.executable, "-u", "-c", *map(str, args)]


def root_links():
    """Names of the root namespace's interfaces."""
    out = cluster.sh(["ip", "-o", "link", "show"])
    return sorted(line.split(":")[1].strip().split("@")[0]
                  for line in out.splitlines())


def outside_addresses(c):
    """Addresses that no host may reach: the root namespace's own, its
    gateway, a public one, and one in the next /24 of the harness's range."""
    out = cluster.sh(["ip", "-4", "-o", "addr", "show"])
    addrs = [w.split("/")[0] for w in out.split() if "/" in w
             and w[0].isdigit() and not w.startswith("127.")]
    gw = cluster.sh(["ip", "-4", "route", "show", "default"]).split()
    if "via" in gw:
        addrs.append(gw[gw.index("via") + 1])
    nxt = (c.subnet_index % 254) + 1
    return addrs + ["1.1.1.1", f"{cluster.NET_BASE}.{nxt}.1"]


def assert_gone(prefix, before_links=None):
    """Nothing of the cluster named prefix is left."""
    assert [n for n in cluster.list_netns() if n.startswith(prefix)] == []
    assert not [p for p in Path("/run/netns").glob(f"{prefix}*")]
    assert not cluster.state_path(prefix).exists()
    locks = [p for p in cluster.STATE_DIR.glob("subnet-*")
             if p.read_text().strip() == prefix]
    assert locks == []
    if before_links is not None:
        assert root_links() == before_links


# ------------------------------------------------------------ the harness

def test_layout_and_caps(netns):
    """Each host has lo and eth0 with one address and one route; the
    bridge's namespace has no address; both ends of every link carry a
    tbf at the host's rate (the manager's own rate on its link) and the
    cluster's MTU, and an 8000-byte datagram crosses unfragmented."""
    with Cluster(2, rate="100mbit", manager_rate="300mbit", mtu=9000) as c:
        for h in c.hosts:
            addrs = c.check_output(h, ["ip", "-4", "-o", "addr"])
            assert f"inet {c.addr(h)}/24" in addrs
            assert addrs.count("inet ") == 2            # lo and eth0
            routes = c.check_output(h, ["ip", "-4", "route"]).strip()
            assert routes.splitlines() == [
                f"{c.subnet} dev eth0 proto kernel scope link src"
                f" {c.addr(h)}"]
            rate = "300Mbit" if h == cluster.MANAGER else "100Mbit"
            for side in c.qdiscs(h):
                assert "tbf" in side and f"rate {rate}" in side
            ends = (c.check_output(h, ["ip", "-o", "link", "show", "eth0"]),
                    cluster.sh(["ip", "-n", c.bridge_ns, "-o", "link",
                                "show", f"v-{h}"]))
            assert all(" mtu 9000 " in end for end in ends), ends
        rx = c.spawn("w1", py(UDP_RECEIVE, c.addr("w1"), PORT))
        rx.wait_line("listening", 10)
        c.check_output("w0", py(UDP_SEND, c.addr("w1"), PORT, 8000))
        assert rx.wait_line(r"got (\d+)", 10).group(1) == "8000"
        br = cluster.sh(["ip", "-n", c.bridge_ns, "-4", "-o", "addr"])
        assert "inet" not in br.replace("inet 127.0.0.1", "")


def test_hosts_reach_each_other_and_nothing_else(netns):
    """Every host reaches every other at its address (and finds that host
    there); an address outside the cluster fails at once with
    ENETUNREACH, so no packet leaves."""
    with Cluster(2) as c:
        for h in c.hosts:
            c.spawn(h, py(LISTEN, c.addr(h), PORT)).wait_line("listening", 10)
        outside = outside_addresses(c)
        for h in c.hosts:
            others = [c.addr(o) for o in c.hosts if o != h]
            res = json.loads(c.check_output(h, py(PROBE, PORT, *others,
                                                  *outside)))
            assert {a: res[a] for a in others} == {a: "ok" for a in others}
            assert {a: res[a] for a in outside} == {
                a: "ENETUNREACH" for a in outside}


def timed_transfer(c, src, dst, size):
    """Sends size bytes over one TCP connection from host src to host dst;
    returns the receiver's seconds."""
    rx = c.spawn(dst, py(RECEIVE, c.addr(dst), PORT))
    rx.wait_line("listening", 10)
    tx = c.run(src, py(SEND, c.addr(dst), PORT, size))
    assert tx.wait(60) == 0
    assert rx.wait(30) == 0
    got = json.loads(rx.output.strip().splitlines()[-1])
    assert got["bytes"] == size
    return got["seconds"]


@pytest.mark.slow
def test_rate_cap_holds_both_ways(netns):
    """20 MiB over TCP at 50 Mbit/s takes size/bandwidth +-25%, from a
    worker to the manager (worker's upload, manager's download) and back."""
    size, rate = 20 << 20, "50mbit"
    expect = size * 8 / cluster.rate_bits(rate)
    with Cluster(1, rate=rate) as c:
        for src, dst in (("w0", "manager"), ("manager", "w0")):
            secs = timed_transfer(c, src, dst, size)
            print(f"{src} -> {dst}: {secs:.2f} s, limit {expect:.2f} s")
            assert 0.75 * expect <= secs <= 1.25 * expect


def test_cleanup_after_error(netns):
    """An exception in the block stops the cluster's processes and removes
    its namespaces, veths, bridge, record and work directory."""
    links = root_links()
    with pytest.raises(RuntimeError):
        with Cluster(2) as c:
            prefix, workdir = c.prefix, c.workdir
            sleeper = c.run("w1", ["sleep", "1000"])
            assert len([n for n in cluster.list_netns()
                        if n.startswith(prefix)]) == 4
            raise RuntimeError("boom")
    assert sleeper.poll() is not None
    assert not workdir.exists()
    assert_gone(prefix, links)


def hold_cluster(prefix):
    """`cluster.py up 1 50mbit PREFIX` in a process of its own; returns it
    once the cluster is ready."""
    p = subprocess.Popen([sys.executable, str(HERE / "cluster.py"), "up",
                          "1", "50mbit", prefix], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if line.startswith("ready"):
            return p
    p.wait()
    pytest.fail("cluster.py up failed:\n" + "".join(lines))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_cleanup_on_signal(netns, sig):
    """^C or SIGTERM to a program holding a cluster removes it."""
    links = root_links()
    prefix = "xyt" + os.urandom(3).hex()
    p = hold_cluster(prefix)
    p.send_signal(sig)
    p.wait(30)
    assert_gone(prefix, links)


def test_cleanup_stale(netns):
    """A cluster whose owner was killed outright stays until
    cleanup_stale() removes it; a live cluster is left alone."""
    links = root_links()
    prefix = "xyt" + os.urandom(3).hex()
    p = hold_cluster(prefix)
    with Cluster(1) as live:
        assert cluster.cleanup_stale(prefix) == []      # owner alive
        p.kill()
        p.wait(10)
        left = [n for n in cluster.list_netns() if n.startswith(prefix)]
        assert len(left) == 3                           # br, manager, w0
        assert sorted(cluster.cleanup_stale(prefix)) == sorted(left)
        assert_gone(prefix)
        assert cluster.cleanup_stale(live.prefix) == []
        assert live.ns("w0") in cluster.list_netns()
    assert_gone(live.prefix, links)


# ------------------------------------------------------- a real Xylem run

def barrier(directory, name, n):
    """Shell: marks this task as arrived, then waits (up to 60 s) until n
    tasks have. Holding each task until all have their input forces one
    task per one-core worker. The count is a glob, so each turn forks
    only sleep."""
    return (f"touch {directory}/{name} && i=0 && while set -- {directory}/*"
            f" && [ $# -lt {n} ]; do i=$((i+1)); [ $i -gt 600 ] && exit 3;"
            f" sleep 0.1; done")


def workflow(tmp, data, bar):
    """t0 and t1 (one on each worker) hash the input; join reads both
    results and the input."""
    tasks = []
    for i in range(2):
        tasks.append({
            "id": f"t{i}",
            "command": "sha256sum in | cut -d' ' -f1 > out && "
                       + barrier(bar, f"t{i}", 2),
            "inputs": [{"path": str(data), "as": "in"}],
            "outputs": [{"path": str(tmp / f"out{i}"), "as": "out"}]})
    tasks.append({
        "id": "join",
        "command": "cat a b > all && wc -c < in >> all",
        "inputs": [{"path": str(tmp / "out0"), "as": "a"},
                   {"path": str(tmp / "out1"), "as": "b"},
                   {"path": str(data), "as": "in"}],
        "outputs": [{"path": str(tmp / "all"), "as": "all"}]})
    path = tmp / "wf.json"
    path.write_text(json.dumps({"name": "netns", "tasks": tasks}))
    return path


def input_transfers(db, obj):
    """(source, dest, bytes, seconds, status) of each transfer of obj."""
    with sqlite3.connect(db) as con:
        return con.execute("SELECT source, dest, bytes, seconds, status"
                           " FROM transfers WHERE object = ?",
                           (obj,)).fetchall()


@pytest.mark.slow
def test_xylem_across_namespaces(netns, xylem_bin, secret_file, tmp_path):
    """A manager host and two worker hosts at 100 Mbit/s: every task
    succeeds, the outputs are right, and each worker got the 10 MB input
    over its capped link, from the manager's transfer server or a peer's,
    at the namespace addresses (no host can reach any other)."""
    size, rate = 10 << 20, "100mbit"
    data = tmp_path / "input.bin"
    data.write_bytes(os.urandom(size))
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    (tmp_path / "bar").mkdir()
    wf, db = workflow(tmp_path, data, tmp_path / "bar"), tmp_path / "run.db"
    with Cluster(2, rate=rate) as c:
        before = {h: c.counters(h) for h in c.hosts}
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        workers = [c.start_worker(i, secret_file) for i in range(2)]
        rc = mgr.wait(120)
        logs = mgr.output + "".join(w.output for w in workers)
        assert rc == 0, logs
        moved = {h: {k: v - before[h][k] for k, v in c.counters(h).items()}
                 for h in c.hosts}
    assert all("connected to" in w.output for w in workers)  # kept
    for i in range(2):
        assert (tmp_path / f"out{i}").read_text() == digest + "\n"
    assert (tmp_path / "all").read_text() == f"{digest}\n{digest}\n{size}\n"
    rows = [r for r in input_transfers(db, digest) if r[4] == "ok"]
    assert sorted(r[1] for r in rows) == ["w0", "w1"], rows
    floor = 0.75 * size * 8 / cluster.rate_bits(rate)
    for src, dest, nbytes, secs, _ in rows:
        assert nbytes == size and secs >= floor, rows
        assert moved[dest]["rx"] >= size, moved
        assert moved[src]["tx"] >= size
    print("transfers:", rows, "bytes:", moved)
