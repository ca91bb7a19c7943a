"""The data plane across namespaces (docs/dataplane.md): a peer transfer
down a broadcast chain, a relay killed mid-broadcast (its successors
finish from another source), a corrupted chunk detected and fetched
again, and the source that sent it rested by the manager. Tokens (binding, replay) are checked on loopback in
tests/unit/test_xchunk.c."""

import hashlib
import json
import os
import secrets
import signal
import sqlite3
import time

import pytest

import cluster
from cluster import Cluster

MIB = 1 << 20


def hash_tasks(tmp, data, n, sleep=0):
    """n tasks, each hashing the input into out<i>."""
    tasks = [{"id": f"t{i}",
              "command": f"sha256sum in | cut -d' ' -f1 > out; sleep {sleep}",
              "inputs": [{"path": str(data), "as": "in"}],
              "outputs": [{"path": str(tmp / f"out{i}"), "as": "out"}]}
             for i in range(n)]
    path = tmp / "wf.json"
    path.write_text(json.dumps({"name": "dataplane", "tasks": tasks}))
    return path


def transfers(db, obj):
    with sqlite3.connect(db) as con:
        return con.execute("SELECT source, dest, bytes, status FROM"
                           " transfers WHERE object = ?", (obj,)).fetchall()


def make_input(tmp, size):
    data = tmp / "input.bin"
    data.write_bytes(os.urandom(size))
    return data, hashlib.sha256(data.read_bytes()).hexdigest()


def check_outputs(tmp, n, digest):
    for i in range(n):
        assert (tmp / f"out{i}").read_text() == digest + "\n"


@pytest.mark.slow
def test_broadcast_chain(netns, xylem_bin, secret_file, tmp_path):
    """Three workers get one 24 MiB input: the manager sends it about
    once, and at least one worker gets it from a peer."""
    data, digest = make_input(tmp_path, 24 * MIB)
    wf, db = hash_tasks(tmp_path, data, 3, sleep=2), tmp_path / "run.db"
    with Cluster(3, rate="200mbit") as c:
        before = c.counters(cluster.MANAGER)
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        workers = [c.start_worker(i, secret_file) for i in range(3)]
        rc = mgr.wait(180)
        logs = mgr.output + "".join(w.output for w in workers)
        sent = c.counters(cluster.MANAGER)["tx"] - before["tx"]
    assert rc == 0, logs
    check_outputs(tmp_path, 3, digest)
    rows = [r for r in transfers(db, digest) if r[3] == "ok"]
    assert sorted(r[1] for r in rows) == ["w0", "w1", "w2"], rows
    assert any(r[0].startswith("w") for r in rows), rows
    assert sent < 2 * 24 * MIB, (sent, rows)


@pytest.mark.slow
def test_relay_killed_mid_broadcast(netns, xylem_bin, secret_file,
                                    tmp_path):
    """A worker that relays the object to its successor is killed halfway:
    every other worker still gets the object and the workflow ends."""
    size, n = 48 * MIB, 4
    data, digest = make_input(tmp_path, size)
    wf, db = hash_tasks(tmp_path, data, n), tmp_path / "run.db"
    with Cluster(n, rate="100mbit") as c:
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        workers = [c.start_worker(i, secret_file) for i in range(n)]
        base = {i: c.counters(c.worker(i))["tx"] for i in range(n)}
        victim, deadline = None, time.monotonic() + 20
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.5)
            for i in range(n):
                if c.counters(c.worker(i))["tx"] - base[i] > 8 * MIB:
                    victim = i
                    break
        assert victim is not None, "no worker relayed"
        cluster.signal_popen(workers[victim].p, signal.SIGKILL)
        rc = mgr.wait(240)
        logs = mgr.output + "".join(w.output for w in workers)
    assert rc == 0, logs
    check_outputs(tmp_path, n, digest)
    ok = {r[1] for r in transfers(db, digest) if r[3] == "ok"}
    assert ok >= {c.worker(i) for i in range(n) if i != victim}, logs
    # A successor of the victim lost its source and went on elsewhere.
    assert "reading chunk" in logs or "cannot connect" in logs, logs


@pytest.mark.slow
def test_corrupt_chunk_fetched_again(netns, xylem_bin, secret_file,
                                     tmp_path):
    """w0 holds the object and flips a byte of chunk 1 in what it serves:
    w1 detects it, asks w0 once more, then gets the rest from the
    manager."""
    data, digest = make_input(tmp_path, 8 * MIB)
    wf, db = hash_tasks(tmp_path, data, 2, sleep=8), tmp_path / "run.db"
    with Cluster(2, rate="200mbit") as c:
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        w0 = c.start_worker(0, secret_file,
                            env={"XYLEM_TEST_CORRUPT_CHUNK": "1"})
        time.sleep(3)  # w0 has the object and runs t0
        w1 = c.start_worker(1, secret_file)
        rc = mgr.wait(120)
        logs = mgr.output + w0.output + w1.output
    assert rc == 0, logs
    check_outputs(tmp_path, 2, digest)
    assert w1.output.count("chunk 1 is corrupt") == 2, logs
    rows = [r for r in transfers(db, digest) if r[3] == "ok"]
    assert sorted(r[1] for r in rows) == ["w0", "w1"], rows


@pytest.mark.slow
def test_corrupt_source_rests(netns, xylem_bin, secret_file, tmp_path):
    """Source cooldown (docs/dataplane.md): w0 holds the object and
    corrupts chunk 1 of whatever it serves. w1 fetches from w0 (an idle
    complete copy), gets the bad chunk twice, finishes from the manager,
    and blames w0, which the manager rests. w2, which comes next, would
    have started from w0 too (the first idle copy); it reads from w1
    instead and never sees a bad chunk. Every task succeeds."""
    data, digest = make_input(tmp_path, 8 * MIB)
    wf, db = hash_tasks(tmp_path, data, 3, sleep=12), tmp_path / "run.db"
    with Cluster(3, rate="200mbit",
                 prefix="xybc" + secrets.token_hex(3)) as c:
        mgr, _ = c.start_manager(wf, secret_file, "--history", db,
                                 cwd=tmp_path)
        w0 = c.start_worker(0, secret_file,
                            env={"XYLEM_TEST_CORRUPT_CHUNK": "1"})
        time.sleep(3)  # w0 has the object and runs t0
        w1 = c.start_worker(1, secret_file)
        mgr.wait_line(r"source w0 rests for 30 s \(for this object\)", 30)
        w2 = c.start_worker(2, secret_file)
        rc = mgr.wait(120)
        logs = mgr.output + w0.output + w1.output + w2.output
    assert rc == 0, logs
    check_outputs(tmp_path, 3, digest)
    assert w1.output.count("chunk 1 is corrupt") == 2, logs
    assert "corrupt" not in w2.output, logs
    rows = {r[1]: r[0] for r in transfers(db, digest) if r[3] == "ok"}
    assert rows.get("w1") == "manager", rows  # where it finished
    assert rows.get("w2") == "w1", rows
