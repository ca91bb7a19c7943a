"""`xylem manager --journal DIR`: clients' tasks that finished are
recorded, their outputs kept in DIR/store, and a client (`xylem cwl
--manager`) that loses its manager reaches it again and submits again
(docs/durability.md, "Clients"). The manager is killed with SIGKILL and
started again on the same journal and port; each task appends a line to
a marks file when it starts, so the marks say what ran."""

import json
import signal
import socket
import subprocess
import time

from helpers import SLOW, wait_for
from test_manager_daemon import write

TIMEOUT = 60 * SLOW

TOOL = """
    cwlVersion: v1.2
    class: CommandLineTool
    baseCommand: [sh, -c]
    inputs:
      n: {type: int}
      nap: {type: float}
    arguments:
      - "echo start $(inputs.n) >> MARKS; sleep $(inputs.nap); echo value $(inputs.n)"
    stdout: out.txt
    outputs:
      out: {type: stdout}
    """


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Standing:
    """A `xylem manager --journal` on a fixed port, killed and started
    again at will."""

    def __init__(self, xylem, secret_file, journal):
        self.xylem, self.secret_file, self.journal = \
            xylem, secret_file, journal
        self.port = free_port()
        self.p = None
        self.start()

    def start(self):
        self.p = self.xylem.start(
            "manager", "--workers", 1, "--port", self.port, "--host",
            "127.0.0.1", "--secret-file", self.secret_file, "--journal",
            self.journal)
        self.p.wait_line(r"listening on port", 30)
        self.p.wait_line(r"worker \S+ ready", 30)

    def kill(self):
        self.p.signal(signal.SIGKILL)
        self.p.wait(30)


def tool_and_jobs(tmp_path, naps):
    marks = tmp_path / "marks"
    tool = write(tmp_path / "mark.cwl", TOOL.replace("MARKS", str(marks)))
    jobs = []
    for n, nap in enumerate(naps):
        job = tmp_path / f"job{n}.json"
        job.write_text(json.dumps({"n": n, "nap": nap}))
        jobs.append(job)
    return tool, jobs, marks


def client(xylem, mgr, tool, job, out):
    return xylem.start("cwl", "--manager", f"127.0.0.1:{mgr.port}",
                       "--secret-file", mgr.secret_file, "--quiet",
                       "--outdir", out, tool, job)


def starts(marks):
    return marks.read_text().split("\n")[:-1] if marks.exists() else []


def finish(c, out, n):
    assert c.wait(TIMEOUT) == 0, c.output
    assert (out / "out.txt").read_text() == f"value {n}\n", c.output


def test_a_killed_manager_restarted_answers_what_finished(xylem, tmp_path,
                                                          secret_file):
    tool, jobs, marks = tool_and_jobs(tmp_path, [0, 0, 0])
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    for n in range(3):
        finish(client(xylem, mgr, tool, jobs[n], tmp_path / f"a{n}"),
               tmp_path / f"a{n}", n)
    assert starts(marks) == ["start 0", "start 1", "start 2"]
    mgr.kill()
    mgr.start()
    # The same tasks again, from new clients: answered from the journal,
    # their outputs fetched from the store that outlived the manager.
    for n in range(3):
        finish(client(xylem, mgr, tool, jobs[n], tmp_path / f"b{n}"),
               tmp_path / f"b{n}", n)
    assert starts(marks) == ["start 0", "start 1", "start 2"]
    assert mgr.p.output.count("finished before (the journal)") == 3, \
        mgr.p.output
    # Another input: it runs.
    job = tmp_path / "job9.json"
    job.write_text(json.dumps({"n": 9, "nap": 0}))
    finish(client(xylem, mgr, tool, job, tmp_path / "c9"),
           tmp_path / "c9", 9)
    assert starts(marks)[-1] == "start 9"


def test_a_client_reattaches_to_its_restarted_manager(xylem, tmp_path,
                                                      secret_file):
    """Three clients: one finished before the kill, two whose tasks run
    when the manager is killed. Those two reach the manager again once
    it is back and submit again: their tasks are taken back from the
    worker that kept them, or run again if it died with the manager;
    the first, asked again, does not run."""
    tool, jobs, marks = tool_and_jobs(tmp_path, [0, 2 * SLOW, 2 * SLOW])
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    finish(client(xylem, mgr, tool, jobs[0], tmp_path / "o0"),
           tmp_path / "o0", 0)
    waiting = [client(xylem, mgr, tool, jobs[n], tmp_path / f"o{n}")
               for n in (1, 2)]
    # Both clients connected and submitted (a client that cannot reach
    # its manager at the start gives up), and one task running at least.
    wait_for(lambda: mgr.p.output.count(" runs as ") >= 3, TIMEOUT,
             what="both tasks submitted")
    wait_for(lambda: len(starts(marks)) >= 2, TIMEOUT,
             what="a second task to start")
    mgr.kill()
    # A TASK sent just before the kill may write its mark just after:
    # nothing new starts while the manager is dead, so a moment later the
    # marks are those of every task that ran under it.
    time.sleep(0.5 * SLOW)
    started = starts(marks)[1:]  # running (they nap), none finished
    for c in waiting:
        c.wait_line(r"lost the manager .* submitting again", TIMEOUT)
    mgr.start()
    for n, c in zip((1, 2), waiting):
        finish(c, tmp_path / f"o{n}", n)
    runs = starts(marks)
    assert runs.count("start 0") == 1
    # A task that was running when the manager died was taken back from
    # its worker if that worker outlived the manager (the clients'
    # sessions: the task is the same one), else ran again, once.
    adopted = mgr.p.output.count("adopted from worker")
    for n in (1, 2):
        assert 1 <= runs.count(f"start {n}") <= 1 + started.count(
            f"start {n}"), runs
    assert len([r for r in runs if r != "start 0"]) == \
        2 + len(started) - adopted, (runs, mgr.p.output)
    # Asked again, nothing runs.
    before = starts(marks)
    for n in range(3):
        finish(client(xylem, mgr, tool, jobs[n], tmp_path / f"p{n}"),
               tmp_path / f"p{n}", n)
    assert starts(marks) == before


def test_journal_sync_needs_a_journal(xylem_bin):
    r = subprocess.run([xylem_bin, "manager", "--journal-sync"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--journal-sync needs --journal" in \
        r.stderr, r.stderr
