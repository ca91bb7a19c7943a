"""Transfer tokens across namespaces (DESIGN.md principle 9,
docs/dataplane.md "Protocol"): a worker's transfer server, asked from
another host, refuses a forged token, a token made for another receiver,
an expired one, and a genuine one used a third time (replayed); a client
without the shared secret gets nothing at all. The client is
tests/netns/xfer_probe.c, which knows the secret and makes its own tokens.
The same checks on loopback are in tests/unit/test_xfer.c and
test_xchunk.c."""

import hashlib
import json
import secrets
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import cluster
from cluster import Cluster

CONTENT = b"z" * 1000


def probe_binary(xylem_bin):
    # build/src/cli/xylem -> build/tests/netns/xfer_probe
    path = Path(xylem_bin).resolve().parents[2] / "tests/netns/xfer_probe"
    if not path.exists():
        pytest.skip(f"no {path}: build the tree with meson")
    return str(path)


def task_done(db, tag):
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT 1 FROM task_events WHERE tag = ? AND"
                               " event = 'done'", (tag,)).fetchone()
    except sqlite3.Error:
        return None


def listening_ports(c, host):
    out = c.check_output(host, ["ss", "-ltnH"])
    return [int(line.split()[3].rsplit(":", 1)[1])
            for line in out.splitlines() if line.strip()]


def run_probe(c, probe, secret_file, host, port, digest, workdir):
    p = c.run(c.worker(1), [probe, secret_file, c.addr(host), port, digest,
                            c.worker(1), workdir],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return dict(line.split() for line in out.splitlines()), err


@pytest.mark.slow
def test_bad_and_replayed_tokens_refused(netns, xylem_bin, secret_file,
                                         tmp_path):
    probe = probe_binary(xylem_bin)
    digest = hashlib.sha256(CONTENT).hexdigest()
    # a leaves a temp in w0's cache; b keeps the run going meanwhile.
    tasks = [
        {"id": "a", "command": "head -c 1000 /dev/zero | tr '\\0' z > out",
         "outputs": [{"path": str(tmp_path / "mid"), "as": "out",
                      "temp": True}]},
        {"id": "b", "command": "sleep 60",
         "inputs": [{"path": str(tmp_path / "mid"), "as": "in"}]},
    ]
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"name": "tokens", "tasks": tasks}))
    db = tmp_path / "run.db"
    wrong = tmp_path / "wrong-secret"
    wrong.write_text(secrets.token_hex(32) + "\n")
    wrong.chmod(0o600)
    with Cluster(2) as c:
        c.start_manager(wf, secret_file, "--history", db, cwd=tmp_path)
        w0 = c.start_worker(0, secret_file)
        end = time.monotonic() + 60
        while not task_done(db, "a") and time.monotonic() < end:
            time.sleep(0.2)
        assert task_done(db, "a"), w0.output
        ports = listening_ports(c, c.worker(0))
        assert len(ports) == 1, ports
        got, err = run_probe(c, probe, secret_file, c.worker(0), ports[0],
                             digest, tmp_path)
        (tmp_path / "bad").mkdir()
        bad, bad_err = run_probe(c, probe, str(wrong), c.worker(0),
                                 ports[0], digest, tmp_path / "bad")
        logs = w0.output
    assert got == {"forged": "denied", "other-name": "denied",
                   "expired": "denied", "fresh-1": "ok", "fresh-2": "ok",
                   "fresh-3": "denied"}, (got, err, logs)
    assert (tmp_path / "probe-3").read_bytes() == CONTENT
    assert "bad token" in logs and "expired token" in logs, logs
    assert "used token" in logs, logs
    # Without the secret, the handshake fails before any token is read.
    assert all(v != "ok" for v in bad.values()), (bad, bad_err)
    assert not any((tmp_path / "bad").iterdir())
