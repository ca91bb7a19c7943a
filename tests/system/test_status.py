"""`xylem status` against a live manager: tasks by state, workers, the
catalogue's counts, JSON output, and clear failures for a wrong secret or
no manager."""

import json
import socket

import pytest

from helpers import task, wait_for, write_workflow


@pytest.fixture
def waiting_manager(xylem, tmp_path, secret_file):
    """A manager with no workers: two tasks ready, one waiting on another's
    output."""
    out = tmp_path / "out"
    tasks = [
        task("first", "echo 1 > o", outputs=[(out / "1", "o")]),
        task("second", "cat i > o", inputs=[(out / "1", "i")],
             outputs=[(out / "2", "o")]),
        task("alone", "echo 3 > o", outputs=[(out / "3", "o")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)
    return mgr, port


def status_json(xylem, port, secret_file):
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file", secret_file,
                  "--json", timeout=20)
    assert r.returncode == 0, r.output
    return json.loads(r.output)


def test_status_shows_waiting_tasks(xylem, waiting_manager, secret_file):
    mgr, port = waiting_manager
    doc = wait_for(lambda: (lambda d: d if d["tasks"].get("ready") == 2
                            else None)(status_json(xylem, port, secret_file)),
                   15, interval=0.3, what="two ready tasks")
    assert doc["tasks"]["waiting"] == 1
    assert doc["tasks"].get("running", 0) == 0
    assert doc["workers"] == []
    # The catalogue: out/1 (written by one task, read by another), out/2
    # and out/3, none made yet.
    assert doc["catalog"] == {"files": 3, "objects": 0}

    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file", secret_file,
                  timeout=20)
    assert r.returncode == 0, r.output
    assert "1 waiting" in r.output
    assert "2 ready" in r.output
    assert "workers  0" in r.output


def test_status_shows_workers(xylem, tmp_path, secret_file):
    tasks = [task(f"s{i}", "sleep 30") for i in range(2)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file)
    xylem.worker(port, secret_file, 2)
    doc = wait_for(lambda: (lambda d: d if d["tasks"].get("running") == 2
                            else None)(status_json(xylem, port, secret_file)),
                   20, interval=0.3, what="two running tasks")
    assert len(doc["workers"]) == 1
    w = doc["workers"][0]
    assert w["cores"] == 2 and w["cores_used"] == 2
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file", secret_file,
                  timeout=20)
    assert r.returncode == 0, r.output
    assert w["name"] in r.output and "2/2" in r.output


def test_status_wrong_secret(xylem, waiting_manager, tmp_path):
    _, port = waiting_manager
    wrong = tmp_path / "wrong"
    wrong.write_text("definitely not it\n")
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file", wrong,
                  timeout=20)
    assert r.returncode == 1
    assert "secret" in r.output


def test_status_no_secret_says_none_was_given(xylem, waiting_manager):
    _, port = waiting_manager
    env = {k: v for k, v in xylem.env.items() if k != "XYLEM_SECRET"}
    r = xylem.run("status", f"127.0.0.1:{port}", timeout=20, env=env)
    assert r.returncode == 1
    assert "none was given" in r.output and "--secret-file" in r.output
    assert "refused" not in r.output


def test_status_no_manager(xylem, secret_file):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file", secret_file,
                  timeout=20)
    assert r.returncode == 1
    assert f"127.0.0.1:{port}" in r.output


def test_status_bad_arguments(xylem):
    assert xylem.run("status", timeout=10).returncode == 2
    assert xylem.run("status", "nohostport", timeout=10).returncode == 2


@pytest.mark.slow
def test_status_timeout(xylem, secret_file):
    """A listener that never answers: status gives up after about 10 s with
    a clear error rather than hanging."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        r = xylem.run("status", f"127.0.0.1:{port}", "--secret-file",
                      secret_file, timeout=30)
    finally:
        srv.close()
    assert r.returncode == 1
    assert f"127.0.0.1:{port}" in r.output
