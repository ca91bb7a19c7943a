"""`xylem run WORKFLOW --manager HOST:PORT` (docs/cli.md, "xylem run
against a standing manager"): a workflow's tasks submitted to a standing
`xylem manager` as its client, in dependency order, outputs fetched to
their paths, a temp left on the workers (never through the client),
URL inputs and archives to unpack, task arrays expanded by the client,
failed tasks run again up to their retries, and what manager mode cannot
take refused before anything runs. The raw SUBMIT of protocol version 16 (temps named by the
client, DROP, an old version refused) is spoken here in Python too."""

import hashlib
import io
import json
import os
import signal
import struct
import tarfile

import pytest

from helpers import SLOW, wait_for
from test_manager_journal import TIMEOUT, Standing, free_port
from test_protocol import frame


def write_wf(path, tasks):
    path.write_text(json.dumps({"name": "remote", "tasks": tasks}))
    return path


def run(xylem, mgr, wf, *extra, cwd=None):
    return xylem.run("run", wf, "--manager", f"127.0.0.1:{mgr.port}",
                     "--secret-file", mgr.secret_file, *extra, cwd=cwd)


def test_a_workflow_runs_on_a_standing_manager(xylem, tmp_path, secret_file):
    """A three-task workflow (a temp between two of them, one task that
    fails once and has a retry): every output lands at its path with the
    right bytes, each task ran as often as it should, the temp is nowhere
    in the workflow's directory, and the manager's worker ran it all."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    marks = tmp_path / "marks"
    (tmp_path / "in.txt").write_text("hello\n")
    flaky = (f"echo c >> {marks}; [ $(grep -c c {marks}) -ge 2 ] || exit 5;"
             " wc -c < in > out")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "a", "command": f"echo a >> {marks}; tr a-z A-Z < in > out",
         "inputs": [{"path": "in.txt", "as": "in"}],
         "outputs": [{"path": "mid", "as": "out", "temp": True}]},
        {"id": "b", "command": f"echo b >> {marks}; cat in in > out",
         "inputs": [{"path": "mid", "as": "in"}],
         "outputs": [{"path": "res/b.txt", "as": "out"}]},
        {"id": "c", "command": flaky, "retries": 1,
         "inputs": [{"path": "in.txt", "as": "in"}],
         "outputs": [{"path": "res/c.txt", "as": "out"}]}])
    r = run(xylem, mgr, wf, "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.output + mgr.p.output
    assert (tmp_path / "res/b.txt").read_text() == "HELLO\nHELLO\n"
    assert (tmp_path / "res/c.txt").read_text().strip() == "6"
    assert sorted(marks.read_text().split()) == ["a", "b", "c", "c"]
    assert not (tmp_path / "mid").exists()
    assert 'task "c" failed (exited with status 5); running it again' \
        ' (run 2 of 2)' in r.output, r.output
    assert "succeeded" not in r.output, r.output  # --quiet
    # A second run is a second run: the standing manager has no workflow
    # of this client's to remember (--journal is the local run's).
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert "3 tasks: 3 succeeded, 0 failed" in r.output, r.output


def test_a_failed_task_stops_what_reads_its_output(xylem, tmp_path,
                                                   secret_file):
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "bad", "command": "echo oops; exit 3",
         "outputs": [{"path": "x", "as": "out"}]},
        {"id": "after", "command": "cat in > out",
         "inputs": [{"path": "x", "as": "in"}],
         "outputs": [{"path": "y", "as": "out"}]},
        {"id": "other", "command": "echo fine > out",
         "outputs": [{"path": "z", "as": "out"}]}])
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 1, r.output
    assert 'failed: task "bad"' in r.output and "oops" in r.output, r.output
    assert 'task "after" not run: its input from "bad" was not made' \
        in r.output, r.output
    assert (tmp_path / "z").read_text() == "fine\n"
    assert not (tmp_path / "y").exists()


def test_what_manager_mode_cannot_take_is_refused(xylem, tmp_path,
                                                  secret_file):
    """Local-run options are refused with the reason and exit 2, before
    anything is submitted; so is a missing secret."""
    plain = write_wf(tmp_path / "plain.json", [
        {"id": "t", "command": "true"}])
    cases = [
        (plain, ["--workers", "2"], "--workers is for a run with its own"
         " manager"),
        (plain, ["--journal", str(tmp_path / "j")], "--journal is for a"),
    ]
    for wf, extra, said in cases:
        r = xylem.run("run", wf, "--manager", "127.0.0.1:9",
                      "--secret-file", secret_file, *extra, cwd=tmp_path)
        assert r.returncode == 2 and said in r.output, (wf, r.output)
    env = dict(xylem.env)
    env.pop("XYLEM_SECRET", None)
    env.pop("XYLEM_SECRET_FILE", None)
    r = xylem.run("run", plain, "--manager", "127.0.0.1:9", env=env)
    assert r.returncode == 2 and "needs the manager's secret" in r.output
    r = xylem.run("run", plain, "--tls-ca", "x", env=env)
    assert r.returncode == 2 and "--tls-ca goes with --manager" in r.output


def test_a_killed_manager_loses_nothing_and_runs_nothing_twice(
        xylem, tmp_path, secret_file):
    """The manager (with a journal; its worker a process of its own that
    outlives it) is killed with SIGKILL while tasks run and others wait
    on them, then started again on its journal and port: `xylem run`
    reaches it again, submits what was out under the same keys, and
    every task ran exactly once, its outputs right."""
    port, journal = free_port(), tmp_path / "journal"
    marks = tmp_path / "marks"

    def manager():
        p = xylem.start("manager", "--workers", 0, "--port", port, "--host",
                        "127.0.0.1", "--secret-file", secret_file,
                        "--journal", journal)
        p.wait_line(r"listening on port", 30)
        return p
    mgr = manager()
    worker = xylem.start("worker", f"127.0.0.1:{port}", "--secret-file",
                         secret_file, "--cores", 4)
    mgr.wait_line(r"worker \S+ ready", 30)
    tasks = [{"id": f"t{i}",
              "command": f"echo t{i} >> {marks}; sleep {2 * SLOW};"
                         f" echo {i} > out",
              "outputs": [{"path": str(tmp_path / f"out/t{i}"), "as": "out"}]}
             for i in range(3)]
    tasks.append({"id": "sum", "command": f"echo sum >> {marks};"
                  " cat a b > out",
                  "inputs": [{"path": str(tmp_path / "out/t0"), "as": "a"},
                             {"path": str(tmp_path / "out/t1"), "as": "b"}],
                  "outputs": [{"path": str(tmp_path / "out/sum"),
                               "as": "out"}]})
    wf = write_wf(tmp_path / "wf.json", tasks)
    client = xylem.start("run", wf, "--manager", f"127.0.0.1:{port}",
                         "--secret-file", secret_file)
    wait_for(lambda: marks.exists() and
             len(marks.read_text().split()) >= 3, TIMEOUT,
             what="three tasks running")
    mgr.signal(signal.SIGKILL)
    mgr.wait(30)
    client.wait_line(r"lost the manager at .* submitting the \d+ tasks"
                     r" still out again", TIMEOUT)
    mgr = manager()
    assert client.wait(TIMEOUT) == 0, client.output + mgr.output
    for i in range(3):
        assert (tmp_path / f"out/t{i}").read_text() == f"{i}\n"
    assert (tmp_path / "out/sum").read_text() == "0\n1\n"
    assert sorted(marks.read_text().split()) == ["sum", "t0", "t1", "t2"], \
        (marks.read_text(), mgr.output, worker.output)
    # The three were running when the manager died: the worker kept them
    # and the manager took them back (not "ran them again").
    assert mgr.output.count("adopted from worker") == 3, mgr.output


def test_a_manager_that_does_not_come_back_is_given_up_on(xylem, tmp_path,
                                                         secret_file):
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "nap", "command": f"sleep {10 * SLOW}"}])
    env = dict(xylem.env, XYLEM_RECONNECT="1")
    client = xylem.start("run", wf, "--manager", f"127.0.0.1:{mgr.port}",
                         "--secret-file", secret_file, env=env)
    mgr.p.wait_line(r" runs as ", TIMEOUT)
    mgr.kill()
    assert client.wait(TIMEOUT) == 1, client.output
    assert "gave up waiting for it" in client.output, client.output


def test_a_wide_gather_and_a_long_broken_chain(xylem, tmp_path, secret_file):
    """A task with 3,000 inputs (it overflowed the stack once), and a
    chain of 5,000 whose head fails: every other task is reported not
    run, and an output from an earlier run stays where it was."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3000):
        (parts / f"p{i}").write_text(f"{i}\n")
    gather = [{"id": "gather", "command": "cat p* | wc -l > out",
               "inputs": [{"path": str(parts / f"p{i}"), "as": f"p{i}"}
                          for i in range(3000)],
               "outputs": [{"path": str(tmp_path / "count"), "as": "out"}]}]
    r = run(xylem, mgr, write_wf(tmp_path / "gather.json", gather))
    assert r.returncode == 0, r.output
    assert (tmp_path / "count").read_text().strip() == "3000"
    (tmp_path / "c").mkdir()
    (tmp_path / "c/l0").write_text("kept\n")
    chain = [{"id": "l0", "command": "exit 1",
              "outputs": [{"path": str(tmp_path / "c/l0"), "as": "out"}]}]
    chain += [{"id": f"l{i}", "command": "cat in > out",
               "inputs": [{"path": str(tmp_path / f"c/l{i - 1}"),
                           "as": "in"}],
               "outputs": [{"path": str(tmp_path / f"c/l{i}"), "as": "out"}]}
              for i in range(1, 5000)]
    r = run(xylem, mgr, write_wf(tmp_path / "chain.json", chain))
    assert r.returncode == 1, r.output[-2000:]
    assert r.output.count("not run: its input from") == 4999
    assert "5000 tasks: 0 succeeded, 1 failed, some not run" in r.output
    assert (tmp_path / "c/l0").read_text() == "kept\n"


def test_a_temp_chain_never_passes_through_the_client(xylem, tmp_path,
                                                      secret_file):
    """A -> temp -> B -> temp -> C through a standing manager: the final
    output is right, and the temps' bytes were never on the client's side
    nor in the manager's store (where everything the client sends or
    fetches goes): they stayed on the worker that wrote them."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    body = "".join(f"line {i} of the temp\n" for i in range(20000))
    src = tmp_path / "src.txt"
    src.write_text(body)
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "a", "command": "cat in > out",
         "inputs": [{"path": str(src), "as": "in"}],
         "outputs": [{"path": str(tmp_path / "t1"), "as": "out",
                      "temp": True}]},
        {"id": "b", "command": "tr a-z A-Z < in > out",
         "inputs": [{"path": str(tmp_path / "t1"), "as": "in"}],
         "outputs": [{"path": str(tmp_path / "t2"), "as": "out",
                      "temp": True}]},
        {"id": "c", "command": "wc -l < in > out; head -1 in >> out",
         "inputs": [{"path": str(tmp_path / "t2"), "as": "in"}],
         "outputs": [{"path": str(tmp_path / "res"), "as": "out"}]}])
    scratch = tmp_path / "client-tmp"
    scratch.mkdir()
    env = dict(xylem.env, TMPDIR=str(scratch))
    r = xylem.run("run", wf, "--manager", f"127.0.0.1:{mgr.port}",
                  "--secret-file", secret_file, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.output + mgr.p.output
    assert (tmp_path / "res").read_text() == "20000\nLINE 0 OF THE TEMP\n"
    assert list(scratch.iterdir()) == []
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()
    store = {p.name for p in (tmp_path / "journal/store").iterdir()}
    temp1 = hashlib.sha256(body.encode()).hexdigest()
    temp2 = hashlib.sha256(body.upper().encode()).hexdigest()
    assert hashlib.sha256(body.encode()).hexdigest() in store  # src.txt
    # src.txt is the same bytes as t1: the manager holds it as the
    # client's input, but not t2, which only a worker ever made.
    assert temp1 in store and temp2 not in store, (store, temp2)
    assert "3 tasks: 3 succeeded" in r.output, r.output


def _tar_gz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_url_inputs_and_archives_through_a_standing_manager(
        xylem, tmp_path, secret_file, origin):
    """A URL input (served by a local HTTP server: a worker fetches it,
    the client never does), an archive from a URL unpacked, a local
    archive unpacked, and a temp archive written by one task and
    unpacked for the next: each task sees what a local run's would."""
    www, base, log = origin
    (www / "words.txt").write_text("alpha\nbeta\n")
    (www / "pack.tgz").write_bytes(_tar_gz({"d/x.txt": b"from the url\n"}))
    (tmp_path / "local.tgz").write_bytes(_tar_gz({"y.txt": b"local\n"}))
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "url", "command": "wc -l < in > out",
         "inputs": [{"url": f"{base}/words.txt", "as": "in"}],
         "outputs": [{"path": str(tmp_path / "r/url"), "as": "out"}]},
        {"id": "urlpack", "command": "cat p/d/x.txt > out",
         "inputs": [{"url": f"{base}/pack.tgz", "as": "p", "unpack": True}],
         "outputs": [{"path": str(tmp_path / "r/urlpack"), "as": "out"}]},
        {"id": "localpack", "command": "cat p/y.txt > out",
         "inputs": [{"path": str(tmp_path / "local.tgz"), "as": "p",
                     "unpack": True}],
         "outputs": [{"path": str(tmp_path / "r/localpack"), "as": "out"}]},
        {"id": "mk", "command": "mkdir z && echo made > z/m.txt &&"
                                " tar czf out z",
         "outputs": [{"path": str(tmp_path / "made.tgz"), "as": "out",
                      "temp": True}]},
        {"id": "use", "command": "cat p/z/m.txt > out",
         "inputs": [{"path": str(tmp_path / "made.tgz"), "as": "p",
                     "unpack": True}],
         "outputs": [{"path": str(tmp_path / "r/use"), "as": "out"}]}])
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 0, r.output + mgr.p.output
    assert (tmp_path / "r/url").read_text().strip() == "2"
    assert (tmp_path / "r/urlpack").read_text() == "from the url\n"
    assert (tmp_path / "r/localpack").read_text() == "local\n"
    assert (tmp_path / "r/use").read_text() == "made\n"
    assert not (tmp_path / "made.tgz").exists()
    requests = log.read_text()
    assert requests.count("GET /words.txt") == 1, requests
    assert requests.count("GET /pack.tgz") == 1, requests


# ------------------------------------------------- SUBMIT spoken by hand

SUBMIT, RESULT, DROP, ACCEPTED, ROLE_CLIENT = 40, 41, 44, 43, 4
FROM_CLIENT, FROM_TEMP, FROM_URL = 0, 1, 2


def _s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack("<I", len(b)) + b


def submit_frame(tid, command, inputs=(), outputs=()):
    """SUBMIT of version 16: inputs (name, from, ref) with no object of
    the client's; outputs (name, temp or "")."""
    p = struct.pack("<Q", tid) + _s("") + _s(command)
    p += struct.pack("<IQQIQ", 1, 0, 0, 0, 0) + struct.pack("<I", 0)
    p += struct.pack("<I", len(inputs))
    for name, src, ref in inputs:
        p += _s(name) + b"\0" * 32 + struct.pack("<BQB", 0, 0, src) \
            + _s(ref) + b"\0"
    p += struct.pack("<I", len(outputs))
    for name, temp in outputs:
        p += _s(name) + _s(temp)
    p += struct.pack("<H", 0) + b"\0" * 32
    return frame(SUBMIT, p)


def parse_result(p):
    tid, result, code = struct.unpack("<QBi", p[:13])
    (n,) = struct.unpack("<I", p[13:17])
    message = p[17:17 + n].decode()
    o = 17 + n
    (n,) = struct.unpack("<I", p[o:o + 4])
    o += 4 + n + 2
    (n_out,) = struct.unpack("<I", p[o:o + 4])
    o += 4
    outs = {}
    for _ in range(n_out):
        (n,) = struct.unpack("<I", p[o:o + 4])
        name = p[o + 4:o + 4 + n].decode()
        o += 4 + n
        outs[name] = p[o:o + 32].hex()
        o += 32 + 1 + 8
    return tid, result, code, message, outs


@pytest.fixture
def plain_standing(xylem, tmp_path, secret_file):
    """A standing manager without TLS (this test's Python speaks plain
    frames with message MACs) and one worker of its own."""
    port = free_port()
    xylem.env = dict(xylem.env, XYLEM_NO_TLS="1")
    xylem.env.pop("XYLEM_TLS_CA", None)
    mgr = xylem.start("manager", "--workers", 1, "--port", port, "--host",
                      "127.0.0.1", "--secret-file", secret_file, "--no-tls")
    mgr.wait_line(r"worker \S+ ready", 30)
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    return mgr, port, secret


class RawClient:
    def __init__(self, port, secret, version=None):
        import test_protocol as tp
        self.tp = tp
        self.s = tp.connect(port)
        nonce_s = tp.read_challenge(self.s)
        nonce_c = os.urandom(tp.NONCE)
        m = tp.mac(secret, b"c", ROLE_CLIENT, nonce_s, nonce_c)
        v = tp.VERSION if version is None else version
        self.s.sendall(tp.frame(tp.AUTH, struct.pack("<HB", v, ROLE_CLIENT)
                                + nonce_c + m))
        self.first = tp.recv_frame(self.s)
        self.out = tp.MsgMac(secret, b"c", nonce_s, nonce_c)
        self.into = tp.MsgMac(secret, b"s", nonce_s, nonce_c)

    def send(self, f):
        self.tp.send_tagged(self.s, self.out, f)

    def result(self):
        while True:
            mtype, p = self.tp.recv_tagged(self.s, self.into)
            if mtype == RESULT:
                return parse_result(p)


def test_raw_submit_temps_names_and_drop(plain_standing):
    """SUBMIT by hand: a temp read before anything wrote it is answered
    INPUT_MISSING with a clear reason (and the connection stays); a temp
    written by one SUBMIT is read by the next, sent at once (the manager
    orders them), and its bytes come back only as the reader's output;
    after DROP the name is nothing again."""
    mgr, port, secret = plain_standing
    c = RawClient(port, secret)
    assert c.first[0] == 3, c.first  # AUTH_OK
    c.send(submit_frame(1, "cat in > out", [("in", FROM_TEMP, "nope")],
                        [("out", "")]))
    tid, result, _, message, _ = c.result()
    assert (tid, result) == (1, 4), message
    assert 'temp "nope" names nothing' in message, message
    c.send(submit_frame(2, "echo hello > out", [], [("out", "t1")]))
    c.send(submit_frame(3, "tr a-z A-Z < in > out", [("in", FROM_TEMP, "t1")],
                        [("out", "")]))
    got = {}
    while len(got) < 2:
        tid, result, code, message, outs = c.result()
        got[tid] = (result, code, message, outs)
    assert got[2][:2] == (0, 0) and got[2][3] == {}, got  # a temp: not listed
    assert got[3][:2] == (0, 0), got
    assert got[3][3] == {"out": hashlib.sha256(b"HELLO\n").hexdigest()}
    c.send(frame(DROP, struct.pack("<I", 1) + _s("t1")))
    c.send(submit_frame(4, "cat in", [("in", FROM_TEMP, "t1")]))
    tid, result, _, message, _ = c.result()
    assert (tid, result) == (4, 4) and "names nothing" in message, message
    # A URL input with a bad scheme is the task's failure, not the link's.
    c.send(submit_frame(5, "cat in", [("in", FROM_URL, "file:///etc/passwd")]))
    tid, result, _, message, _ = c.result()
    assert (tid, result) == (5, 4) and "in:" in message, message


def test_an_old_version_client_is_refused(plain_standing):
    """A client that speaks version 15 (SUBMIT without sources or temps)
    is refused in the handshake with ERROR VERSION naming both versions,
    not misread."""
    mgr, port, secret = plain_standing
    c = RawClient(port, secret, version=15)
    mtype, p = c.first
    assert mtype == 4, (mtype, p)  # ERROR
    (code,) = struct.unpack("<I", p[:4])
    assert code == 3, p  # version mismatch
    assert b"15" in p and b"16" in p, p
    mgr.wait_line(r"refused .*version", 10)


def test_a_lost_temp_is_made_again_from_its_writer(xylem, tmp_path,
                                                   secret_file):
    """A client's temp whose only worker is killed (SIGKILL) after its
    writer's RESULT: its reader, submitted afterwards, still succeeds on
    another worker, because the manager runs the writer again from the
    copy it kept (lineage), as for a local run's temp."""
    port = free_port()
    xylem.env = dict(xylem.env, XYLEM_NO_TLS="1")
    xylem.env.pop("XYLEM_TLS_CA", None)
    mgr = xylem.start("manager", "--workers", 0, "--port", port, "--host",
                      "127.0.0.1", "--secret-file", secret_file, "--no-tls")
    mgr.wait_line(r"listening on port", 30)

    def worker(name):
        return xylem.start("worker", f"127.0.0.1:{port}", "--secret-file",
                           secret_file, "--cores", 1, "--no-tls",
                           "--name", name, "--cache", tmp_path / name)
    w1 = worker("w1")
    mgr.wait_line(r"worker w1 ready", 30)
    secret = open(secret_file, "rb").read().rstrip(b"\n")
    marks = tmp_path / "marks"
    c = RawClient(port, secret)
    assert c.first[0] == 3, c.first
    c.send(submit_frame(1, f"echo w >> {marks}; echo hi > out", [],
                        [("out", "t")]))
    tid, result, _, message, _ = c.result()
    assert (tid, result) == (1, 0), message
    w1.signal(signal.SIGKILL)
    w1.wait(30)
    mgr.wait_line(r"worker w1 .*(gone|lost|left|closed)", 30)
    worker("w2")
    mgr.wait_line(r"worker w2 ready", 30)
    c.send(submit_frame(2, "tr a-z A-Z < in > out", [("in", FROM_TEMP, "t")],
                        [("out", "")]))
    tid, result, _, message, outs = c.result()
    assert (tid, result) == (2, 0), message + mgr.output
    assert outs == {"out": hashlib.sha256(b"HI\n").hexdigest()}
    assert marks.read_text() == "w\nw\n", mgr.output


def test_task_arrays_through_a_standing_manager(xylem, tmp_path,
                                                secret_file):
    """A range array and a lines array, expanded by the client (an index a
    SUBMIT, XY_INDEX and XY_LINE set, the marks in paths and names
    replaced), one index failing once and run again alone, a task after
    the array; and an array of 1,500 indexes, more than the client keeps
    out at once (1,000)."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    marks = tmp_path / "marks"
    (tmp_path / "words.txt").write_text("red\ngreen\nblue")
    (tmp_path / "in").mkdir()
    for word in ("red", "green", "blue"):
        (tmp_path / f"in/{word}.txt").write_text(f"a {word} thing\n")
    flaky = (f"echo $XY_INDEX >> {marks};"
             f" [ $XY_INDEX != 2 ] || [ $(grep -c '^2$' {marks}) -ge 2 ]"
             " || exit 4; echo $((XY_INDEX * XY_INDEX)) > out")
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "sq", "array": {"range": 5}, "retries": 1, "command": flaky,
         "outputs": [{"path": "res/sq-${XY_INDEX}.txt", "as": "out"}]},
        {"id": "up", "array": {"lines": "words.txt"},
         "command": 'tr a-z A-Z < "$XY_LINE.in" > up.txt',
         "inputs": [{"path": "in/${XY_LINE}.txt", "as": "${XY_LINE}.in"}],
         "outputs": [{"path": "up/${XY_INDEX}.txt", "as": "up.txt"}]},
        {"id": "many", "array": {"range": 1500}, "command": "true"}])
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 0, r.output[-3000:] + mgr.p.output[-3000:]
    for i in range(5):
        assert (tmp_path / f"res/sq-{i}.txt").read_text() == f"{i * i}\n"
    assert [(tmp_path / f"up/{i}.txt").read_text() for i in range(3)] == \
        ["A RED THING\n", "A GREEN THING\n", "A BLUE THING\n"]
    assert sorted(marks.read_text().split()) == ["0", "1", "2", "2", "3",
                                                 "4"]
    assert 'task "sq[2]" failed (exited with status 4); running it again' \
        ' (run 2 of 2)' in r.output, r.output
    assert "1508 tasks: 1508 succeeded, 0 failed" in r.output, r.output


def test_an_array_behind_a_full_window_still_runs(xylem, tmp_path,
                                                  secret_file):
    """1,000 plain tasks fill the client's window before an array is
    reached: the array's indexes go once plain tasks' results make room
    (they were fed only after an index of their own, so the run ended
    with the array never run, and said so with exit 0)."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    marks = tmp_path / "marks"
    tasks = [{"id": f"p{i}", "command": "true"} for i in range(1000)]
    tasks.append({"id": "arr", "array": {"range": 3},
                  "command": f"echo $XY_INDEX >> {marks}"})
    wf = write_wf(tmp_path / "wf.json", tasks)
    r = run(xylem, mgr, wf, cwd=tmp_path)
    assert r.returncode == 0, r.output[-3000:] + mgr.p.output[-3000:]
    assert sorted(marks.read_text().split()) == ["0", "1", "2"]
    assert "1003 tasks: 1003 succeeded, 0 failed" in r.output, r.output


@pytest.mark.parametrize("journal", [True, False])
def test_temps_through_a_killed_manager(xylem, tmp_path, secret_file,
                                        journal):
    """The manager is killed with SIGKILL while B, which reads A's temp,
    runs, and started again. With a journal it knows the session's temps
    again (CTEMP records), B is taken back from its worker, and A ran
    once. Without one it knows nothing: B, submitted again, is answered
    that its temp names nothing, and `xylem run` runs A again, then B.
    Either way the run succeeds with the right output."""
    port, jdir = free_port(), tmp_path / "journal"
    marks = tmp_path / "marks"

    def manager():
        p = xylem.start("manager", "--workers", 0, "--port", port, "--host",
                        "127.0.0.1", "--secret-file", secret_file,
                        *(["--journal", jdir] if journal else []))
        p.wait_line(r"listening on port", 30)
        return p
    mgr = manager()
    xylem.start("worker", f"127.0.0.1:{port}", "--secret-file", secret_file,
                "--cores", 2, "--lease", 120)
    mgr.wait_line(r"worker \S+ ready", 30)
    wf = write_wf(tmp_path / "wf.json", [
        {"id": "a", "command": f"echo a >> {marks}; echo made > out",
         "outputs": [{"path": str(tmp_path / "mid"), "as": "out",
                      "temp": True}]},
        {"id": "b", "command": f"echo b >> {marks}; sleep {2 * SLOW};"
                               " tr a-z A-Z < in > out",
         "inputs": [{"path": str(tmp_path / "mid"), "as": "in"}],
         "outputs": [{"path": str(tmp_path / "res"), "as": "out"}]}])
    client = xylem.start("run", wf, "--manager", f"127.0.0.1:{port}",
                         "--secret-file", secret_file)
    wait_for(lambda: marks.exists() and "b" in marks.read_text().split(),
             TIMEOUT, what="b running")
    mgr.signal(signal.SIGKILL)
    mgr.wait(30)
    mgr = manager()
    assert client.wait(TIMEOUT) == 0, client.output + mgr.output
    assert (tmp_path / "res").read_text() == "MADE\n"
    assert "2 tasks: 2 succeeded, 0 failed" in client.output, client.output
    lost = "was lost with the manager: running \"a\" again for \"b\""
    if journal:
        assert marks.read_text().split().count("a") == 1, \
            (marks.read_text(), mgr.output)
        assert lost not in client.output, client.output
        assert "temps of clients' sessions known again" in mgr.output
    else:
        assert marks.read_text().split().count("a") == 2, marks.read_text()
        assert lost in client.output, client.output
