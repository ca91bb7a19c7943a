"""Archives declared for unpacking and URL inputs, through workflow files
(docs/workflow.md): an archive is expanded once per worker and shared by
the tasks there; a corrupt one fails its tasks with INPUT_MISSING and the
reason; a URL is fetched from its origin once, whatever the number of
workers, and an HTTP error fails its tasks with the status."""

import os
import re
import tarfile

import pytest

from helpers import SLOW, write_workflow

WORKERS = 3


def unpack_task(tid, archive, out):
    return {"id": tid,
            "command": "cat d/sub/a.txt d/b.txt > out; readlink d >> out;"
                       " sleep 0.5",
            "inputs": [{"path": str(archive), "as": "d", "unpack": True}],
            "outputs": [{"path": str(out), "as": "out"}]}


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tgz", "w:gz"),
                                         (".tar.bz2", "w:bz2"),
                                         (".tar.xz", "w:xz")])
def test_unpacked_once_per_worker(xylem, tmp_path, suffix, mode):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    (src / "b.txt").write_text("beta\n")
    archive = tmp_path / f"arch{suffix}"
    with tarfile.open(archive, mode) as t:
        t.add(src, arcname=".")
    tasks = [unpack_task(f"t{i}", archive, tmp_path / f"o{i}")
             for i in range(8)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "2", "--cores-per-worker", "2",
                  env={**os.environ, "XYLEM_LOG": "info"}, timeout=60)
    assert r.returncode == 0, r.output
    roots = set()
    for i in range(8):
        lines = (tmp_path / f"o{i}").read_text().splitlines()
        assert lines[:2] == ["alpha", "beta"]
        roots.add(lines[2])
    assert all(re.search(r"/unpacked/[0-9a-f]{64}$", x) for x in roots)
    assert len(roots) == 2, roots  # one expansion on each worker
    assert len(re.findall(r"unpacked [0-9a-f]{12} into", r.output)) == 2, \
        r.output


def test_corrupt_archive(xylem, tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(os.urandom(5000))
    good = tmp_path / "good.txt"
    good.write_text("x\n")
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "bad", "command": "ls d",
         "inputs": [{"path": str(bad), "as": "d", "unpack": True}]},
        {"id": "ok", "command": "cat g",
         "inputs": [{"path": str(good), "as": "g"}]}])
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode == 1, r.output
    assert 'task "bad": input missing' in r.output
    assert "cannot unpack the archive: tar exited with status 2" in r.output
    assert "1 succeeded, 1 failed" in r.output


def test_unpack_refused_on_output(xylem, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "w", "command": "true",
         "outputs": [{"path": str(tmp_path / "o"), "as": "o",
                      "unpack": True}]}])
    r = xylem.run("run", wf, timeout=30)
    assert r.returncode == 2, r.output
    assert "only an input may have" in r.output


def test_url_one_get_for_many_workers(xylem, tmp_path, origin):
    www, base, log = origin
    data = os.urandom(3 << 20)  # twelve chunks: peers relay a chain
    (www / "data.bin").write_bytes(data)
    tasks = [{"id": f"u{i}", "command": "sha256sum data > out; sleep 1",
              "inputs": [{"url": f"{base}/data.bin", "as": "data"}],
              "outputs": [{"path": str(tmp_path / f"o{i}"), "as": "out"}]}
             for i in range(WORKERS * 2)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", str(WORKERS),
                  "--cores-per-worker", "1", timeout=60)
    assert r.returncode == 0, r.output
    import hashlib
    want = hashlib.sha256(data).hexdigest()
    for i in range(WORKERS * 2):
        assert (tmp_path / f"o{i}").read_text().split()[0] == want
    gets = [ln for ln in log.read_text().splitlines() if '"GET ' in ln]
    assert len(gets) == 1, gets


def test_url_http_error(xylem, tmp_path, origin):
    www, base, log = origin
    wf = write_workflow(tmp_path / "wf.json", [
        {"id": "miss", "command": "cat data",
         "inputs": [{"url": f"{base}/nope", "as": "data"}]}])
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode == 1, r.output
    assert 'task "miss": input missing' in r.output
    assert f"HTTP 404 from {base}/nope" in r.output


def test_url_unpacked(xylem, tmp_path, origin):
    """An archive at a URL, unpacked: fetched once, expanded per worker."""
    www, base, log = origin
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("alpha\n")
    (src / "b.txt").write_text("beta\n")
    with tarfile.open(www / "a.tar.gz", "w:gz") as t:
        t.add(src, arcname=".")
    tasks = [{"id": f"t{i}", "command": "cat d/sub/a.txt d/b.txt > out",
              "inputs": [{"url": f"{base}/a.tar.gz", "as": "d",
                          "unpack": True}],
              "outputs": [{"path": str(tmp_path / f"o{i}"), "as": "out"}]}
             for i in range(4)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "2", timeout=60)
    assert r.returncode == 0, r.output
    for i in range(4):
        assert (tmp_path / f"o{i}").read_text() == "alpha\nbeta\n"
    gets = [ln for ln in log.read_text().splitlines() if '"GET ' in ln]
    assert len(gets) == 1, gets


class HoldingOrigin:
    """An HTTP origin on loopback that holds every request until `want`
    are open at once (or `patience` seconds pass), then answers them all;
    `most` is the largest number it saw open together."""

    def __init__(self, want, patience):
        import socket
        import threading
        self.want, self.patience = want, patience
        self.lock = threading.Condition()
        self.open = self.most = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        import threading
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,),
                             daemon=True).start()

    def answer(self, conn):
        with conn:
            path = conn.recv(4096).split(b" ")[1]
            with self.lock:
                self.open += 1
                self.most = max(self.most, self.open)
                self.lock.notify_all()
                self.lock.wait_for(lambda: self.most >= self.want,
                                   self.patience)
            body = path * 100
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n"
                         % len(body) + body)
            with self.lock:
                self.open -= 1

    def close(self):
        self.sock.close()


def test_urls_spread_over_workers(xylem, tmp_path):
    """Four URLs, two workers: each worker downloads two at once (the
    cap), rather than one worker taking all four and queueing half."""
    origin = HoldingOrigin(want=4, patience=8 * SLOW)
    try:
        tasks = [{"id": f"u{i}", "command": "wc -c < data > out",
                  "inputs": [{"url": f"http://127.0.0.1:{origin.port}/{i}",
                              "as": "data"}],
                  "outputs": [{"path": str(tmp_path / f"o{i}"),
                               "as": "out"}]}
                 for i in range(4)]
        wf = write_workflow(tmp_path / "wf.json", tasks)
        r = xylem.run("run", wf, "--workers", "2", "--cores-per-worker",
                      "1", timeout=60)
        assert r.returncode == 0, r.output
        assert origin.most == 4, origin.most
    finally:
        origin.close()
