#!/usr/bin/env python3
"""One object to N workers over capped links (DESIGN.md, Benchmarks).

Makes a namespace cluster (tests/netns/cluster.py: a manager host and
max(N) worker hosts, every link capped at --rate both ways), writes one
random object of --size-mib on the manager's side, and for each N measures
in the same run:

  limit   size/bandwidth, the physical limit for any N
  xylem   `xylem run --workers 0` on the manager host and N `xylem worker
          --cores 1` on worker hosts; N tasks, each with the object as input
          and resources {cores: 1}. Each task waits, at a barrier, until all
          N have started, so that every worker runs exactly one task (and
          so fetches the object). Time: from the first dispatch to the last
          completed copy of the object, from the run's history database.
  single  every worker host pulls the whole file from the manager host
          (python3 -m http.server there, curl on the workers, all at once)
  tree    a binary tree of whole-file copies over HTTP: in round k every
          host that has the file serves it to one that has not
  plain   xylem with XYLEM_NO_TLS=1 (manager and workers: plain TCP,
          each control message MACed, peer transfers by sendfile and
          checked by their chunks' hashes): like for like with the chain,
          which encrypts nothing; xylem against plain is TLS's cost
  chain   a plain relay chain over the same hosts: the manager host sends
          the file over TCP to worker 1, which writes each block it reads
          to disk and to worker 2 at once, and so on (a small Python relay
          on each host, 256 KiB reads, no checks): the issue-19 baseline
  ring    every worker host already has the file and pulls it once more
          from the next one, all at once: every link busy both ways at the
          full rate, the traffic pattern of an ideal pipelined broadcast.
          It says what this machine can carry: on 2 cores, 16 links at
          200 Mbit/s with 1500-byte frames are more than the kernel moves
          at full rate (hence --mtu 9000 by default).

and prints each time over size/bandwidth. The target for Xylem is 1.25 at
every N (principle 4, pipelined broadcast); a single source costs about N,
a tree about ceil(log2(N+1)).

    sudo bench/broadcast.py                                   # the full run
    sudo bench/broadcast.py --size-mib 64 --workers 2,4       # about a minute
    sudo bench/broadcast.py --mtu 1500 --workers 8,16 --only xylem,ring

Needs root, iproute2, curl, and a built xylem (env XYLEM_BIN, else
build/src/cli/xylem).
"""

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/netns"))

import cluster                                   # noqa: E402
from cluster import MANAGER, Cluster, ClusterError  # noqa: E402
sys.path.insert(0, str(REPO / "bench"))
import nsbench                                   # noqa: E402
from nsbench import (HTTP_SERVER, add_link_args, sha256_file,  # noqa: E402
                     write_random)

HTTP_PORT = 8000


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=256,
                    help="size of the object in MiB (256)")
    add_link_args(ap)
    ap.add_argument("--workers", default="2,4,8,16",
                    help="comma-separated values of N (2,4,8,16)")
    ap.add_argument("--only", default="xylem,single,tree,ring",
                    help="which of xylem,plain,single,tree,chain,ring to"
                    " measure (all but plain and chain)")
    ap.add_argument("--details", action="store_true",
                    help="print where each xylem run's time went (copy"
                    " times, plan shape, failed fetches) to stderr")
    a = ap.parse_args(argv)
    a.ns = sorted({int(n) for n in a.workers.split(",")})
    a.methods = [m for m in ("xylem", "plain", "single", "tree", "chain",
                             "ring")
                 if m in a.only.split(",")]
    if not a.ns or a.ns[0] < 1 or a.size_mib < 1:
        ap.error("--workers and --size-mib must be positive")
    return a


# --------------------------------------------------------------- Xylem

def barrier(directory, name, n, seconds):
    """Shell: marks this task as arrived, then waits until n have (the
    count is a glob, so each turn forks only sleep); gives up after
    seconds with exit 3."""
    turns = int(seconds / 0.2) + 1
    return (f"touch {directory}/{name} && i=0 && while set -- {directory}/*"
            f" && [ $# -lt {n} ]; do i=$((i+1)); [ $i -gt {turns} ] &&"
            f" exit 3; sleep 0.2; done")


def write_workflow(path, obj, n, bar, patience):
    """N tasks, each reading the object (its first byte: every byte was
    verified on arrival) and waiting at the barrier."""
    tasks = [{"id": f"get{i}",
              "command": "head -c 1 obj > /dev/null && "
                         + barrier(bar, f"get{i}", n, patience),
              "inputs": [{"path": str(obj), "as": "obj"}],
              "resources": {"cores": 1}} for i in range(n)]
    path.write_text(json.dumps({"name": f"broadcast-{n}", "tasks": tasks}))


def xylem_span(db, obj_id, n):
    """Seconds from the first dispatch to the last completed copy of the
    object on a worker, from the history; fails unless all n copies are
    there."""
    with sqlite3.connect(db) as con:
        first = con.execute("SELECT min(time) FROM task_events"
                            " WHERE event = 'dispatched'").fetchone()[0]
        rows = con.execute("SELECT dest, time, seconds FROM transfers"
                           " WHERE object = ? AND status = 'ok' AND"
                           " dest != 'manager'", (obj_id,)).fetchall()
    if len({r[0] for r in rows}) != n:
        raise ClusterError(f"expected {n} copies, history has {rows}")
    start = min([first] + [t - s for _, t, s in rows])
    return max(t for _, t, _ in rows) - start


def xylem_details(db, obj_id):
    """Where a run's time went, from its history: the copies' completion
    times from the first dispatch (quantiles), the plan's shape (copies
    served by the manager, relay depth) and every failed fetch by cause.
    For blaming a slow large-N run on the plan, on failures, or on the
    machine (a relay chain just as slow in the same run)."""
    with sqlite3.connect(db) as con:
        first = con.execute("SELECT min(time) FROM task_events"
                            " WHERE event = 'dispatched'").fetchone()[0]
        rows = con.execute("SELECT source, dest, time, seconds, status"
                           " FROM transfers WHERE object = ? AND"
                           " dest != 'manager'", (obj_id,)).fetchall()
    ok = sorted((t - first, s, src, dst) for src, dst, t, s, st in rows
                if st == "ok")
    if not ok:
        return "no copies"
    done = [t for t, _, _, _ in ok]
    q = [done[min(len(done) - 1, int(f * len(done)))]
         for f in (0.1, 0.5, 0.9)] + [done[-1]]
    parent = {dst: src for _, _, src, dst in ok}
    depth = {}
    for d in parent:
        k, hop = 0, d
        while hop in parent and k <= len(parent):
            hop, k = parent[hop], k + 1
        depth[d] = k
    fails = {}
    for _, _, _, _, st in rows:
        if st != "ok":
            fails[st] = fails.get(st, 0) + 1
    longest = max(ok, key=lambda r: r[1])
    from_manager = sum(1 for v in parent.values() if v == "manager")
    return (f"copies done at {q[0]:.1f}/{q[1]:.1f}/{q[2]:.1f}/{q[3]:.1f} s"
            f" (p10/p50/p90/last); {from_manager} served by"
            f" the manager; relay depth max {max(depth.values())};"
            f" longest copy {longest[1]:.1f} s ({longest[2]} -> {longest[3]});"
            f" failed fetches {sum(fails.values())}"
            + (f" {fails}" if fails else ""))


def run_xylem(c, n, obj, obj_id, limit, work, details=False, plain=False):
    """One run of the manager and n workers (plain: with no TLS, as the
    chain sends); returns the span."""
    run_dir = work / f"{'plain' if plain else 'xylem'}-{n}"
    bar = run_dir / "barrier"
    bar.mkdir(parents=True)
    patience = 4 * n * limit + 120
    write_workflow(run_dir / "wf.json", obj, n, bar, patience)
    db = nsbench.run_xylem(c, run_dir, n, 1, patience + 60,
                           {"XYLEM_NO_TLS": "1"} if plain else None)
    if details:
        print(f"{'plain' if plain else 'xylem'} N={n}:"
              f" {xylem_details(db, obj_id)}", file=sys.stderr)
    return xylem_span(db, obj_id, n)


# ------------------------------------------------------------ baselines

def start_http(c, hosts, root):
    """An HTTP server on each host, serving root/<host>/."""
    procs = []
    for h in hosts:
        (root / h).mkdir(parents=True, exist_ok=True)
        p = c.spawn(h, [sys.executable, "-u", "-c", HTTP_SERVER, c.addr(h),
                        HTTP_PORT, root / h], name=f"http-{h}")
        procs.append(p)
    for p in procs:
        p.wait_line(r"Serving HTTP", 10)
    return procs


def copy_round(c, pairs, root, size, name="obj"):
    """Every (src, dst) at once: dst pulls src's obj with curl into
    root/dst/name. Waits for all; checks each exit and size."""
    procs = []
    for src, dst in pairs:
        url = f"http://{c.addr(src)}:{HTTP_PORT}/obj"
        procs.append(c.spawn(dst, ["curl", "-sS", "--fail", "--noproxy",
                                   "*", "-o", root / dst / name, url],
                             name=f"curl-{dst}"))
    for (src, dst), p in zip(pairs, procs):
        if p.wait(3600) != 0:
            raise ClusterError(f"curl {src} -> {dst}:\n{p.output}")
        if (root / dst / name).stat().st_size != size:
            raise ClusterError(f"{dst}: short copy from {src}")


def tree_rounds(hosts):
    """Rounds of a whole-file tree from hosts[0]: in each round every
    holder sends to one host that lacks the file."""
    have, need, rounds = hosts[:1], hosts[1:], []
    while need:
        pairs = list(zip(have, need))
        rounds.append(pairs)
        have = have + [d for _, d in pairs]
        need = need[len(pairs):]
    return rounds


def run_http(c, n, obj, size, work, method):
    """An HTTP baseline; returns its seconds, from the first curl's start
    to the last one's end (the servers start untimed).

    single: one round, every worker pulls from the manager host.
    tree:   tree_rounds from the manager host.
    ring:   every worker already holds the file and pulls it once more
            from the next worker, all at once: every link busy both ways
            at the full rate, the traffic of an ideal pipelined broadcast.
            What this machine can carry; the floor for Xylem's figure."""
    root = work / f"{method}-{n}"
    workers = [c.worker(i) for i in range(n)]
    holders = workers if method == "ring" else [MANAGER]
    for h in holders:
        (root / h).mkdir(parents=True)
        os.link(obj, root / h / "obj")
    servers = start_http(c, [MANAGER] + workers, root)
    if method == "single":
        rounds = [[(MANAGER, w) for w in workers]]
    elif method == "tree":
        rounds = tree_rounds([MANAGER] + workers)
    else:
        rounds = [[(workers[(i + 1) % n], w) for i, w in enumerate(workers)]]
    t0 = time.monotonic()
    for pairs in rounds:
        copy_round(c, pairs, root, size, "copy" if method == "ring" else "obj")
    secs = time.monotonic() - t0
    for p in servers:
        p.stop(2)
    return secs


# A relay of the plain chain: listens on PORT, writes what it reads to
# FILE and, unless it is the last, to NEXT:PORT as it reads it.
RELAY = """
import socket, sys
addr, port, path, nxt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, port)); ls.listen(1)
print("relay ready", flush=True)
conn, _ = ls.accept()
out = None
if nxt != "-":
    out = socket.create_connection((nxt, port))
with open(path, "wb") as f:
    while True:
        b = conn.recv(262144)
        if not b:
            break
        if out:
            out.sendall(b)
        f.write(b)
if out:
    out.close()
print("relay done", flush=True)
"""
RELAY_PORT = 8001


def run_chain(c, n, obj, size, work):
    """The plain relay chain manager -> w1 -> ... -> wN; seconds from the
    first byte sent to the last relay's end."""
    root = work / f"chain-{n}"
    workers = [c.worker(i) for i in range(n)]
    relays = []
    for i in reversed(range(n)):
        (root / workers[i]).mkdir(parents=True)
        nxt = c.addr(workers[i + 1]) if i + 1 < n else "-"
        p = c.spawn(workers[i], [sys.executable, "-u", "-c", RELAY,
                                 c.addr(workers[i]), RELAY_PORT,
                                 root / workers[i] / "obj", nxt],
                    name=f"relay-{workers[i]}")
        p.wait_line(r"relay ready", 10)
        relays.append(p)
    send = ("import socket, sys; s = socket.create_connection((sys.argv[1],"
            " %d)); f = open(sys.argv[2], 'rb'); s.sendfile(f); s.close()"
            % RELAY_PORT)
    t0 = time.monotonic()
    src = c.spawn(MANAGER, [sys.executable, "-c", send,
                            c.addr(workers[0]), obj], name="chain-source")
    if src.wait(3600) != 0:
        raise ClusterError(f"chain source:\n{src.output}")
    for p in relays:
        if p.wait(3600) != 0:
            raise ClusterError(f"relay:\n{p.output}")
    secs = time.monotonic() - t0
    for w in workers:
        if (root / w / "obj").stat().st_size != size:
            raise ClusterError(f"{w}: short copy in the chain")
    return secs


# ---------------------------------------------------------------- report

# What each method should cost, in units of size/bandwidth.
EXPECT = {"xylem": lambda n: "<=1.25", "plain": lambda n: "<=1.25",
          "single": lambda n: f"~{n}",
          "tree": lambda n: f"~{math.ceil(math.log2(n + 1))}",
          "chain": lambda n: "~1", "ring": lambda n: "~1"}


def header(a, limit):
    best = 1 / cluster.tcp_efficiency(a.mtu)
    print(f"broadcast: one {a.size_mib} MiB object to N workers, every link"
          f" capped at {a.rate} both ways,\nMTU {a.mtu}; size/bandwidth ="
          f" {limit:.2f} s. Each x is time / (size/bandwidth); TCP and"
          f"\nEthernet headers make {best:.3f} the best any TCP transfer can"
          " do. ring: every link busy\nboth ways at once, what this machine"
          " can carry (the floor for a pipelined broadcast).")
    cols = "".join(f" | {m + ' s':>8} {'x':>5} {'want':>6}"
                   for m in a.methods)
    print(f"{'N':>3} {'limit s':>8}{cols}", flush=True)


def row(n, limit, methods, res):
    cells = "".join(f" | {res[m]:8.2f} {res[m] / limit:5.2f}"
                    f" {EXPECT[m](n):>6}" if res.get(m) is not None else
                    f" | {'-':>8} {'-':>5} {'-':>6}" for m in methods)
    print(f"{n:3d} {limit:8.2f}{cells}", flush=True)


def main(argv):
    a = parse_args(argv)
    reason = cluster.check_available()
    if reason:
        print(f"broadcast: skipped: {reason}", file=sys.stderr)
        return 77
    uses_xylem = "xylem" in a.methods or "plain" in a.methods
    if uses_xylem and not cluster.xylem_binary():
        print("broadcast: no xylem binary (XYLEM_BIN or build/src/cli/xylem)",
              file=sys.stderr)
        return 1
    size = a.size_mib << 20
    limit = size * 8 / cluster.rate_bits(a.rate)
    with Cluster(max(a.ns), rate=a.rate, mtu=a.mtu) as c:
        work = c.workdir / "bench"
        work.mkdir()
        obj = work / "object.bin"
        write_random(obj, size)
        obj_id = sha256_file(obj) if uses_xylem else None
        header(a, limit)
        for n in a.ns:
            res = measure(c, n, a.methods, obj, obj_id, size, limit, work,
                          a.details)
            row(n, limit, a.methods, res)
    print("target: xylem <= 1.25 at every N (principle 4)" +
          (", or <= 1.10 x chain (issue 19)" if "chain" in a.methods
           else ""))
    return 0


def measure(c, n, methods, obj, obj_id, size, limit, work, details=False):
    """Runs each method for this N (the ring needs N >= 2); removes the
    copies afterwards."""
    res = {}
    for m in methods:
        if m == "xylem":
            res[m] = run_xylem(c, n, obj, obj_id, limit, work, details)
        elif m == "plain":
            res[m] = run_xylem(c, n, obj, obj_id, limit, work, details,
                               plain=True)
        elif m == "chain":
            res[m] = run_chain(c, n, obj, size, work)
        elif m != "ring" or n >= 2:
            res[m] = run_http(c, n, obj, size, work, m)
        clear_copies(work)
    return res


def clear_copies(work):
    """Removes the baselines' files (the object itself, one level up,
    stays)."""
    for p in work.glob("*/*/*"):
        if p.is_file():
            p.unlink()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
