"""Clients that re-attach (docs/durability.md, "Clients"): a client of
`xylem manager --journal DIR` names a session and gives each SUBMIT a
key; the manager records a SUBMIT before it says ACCEPTED and a task's
end before its RESULT. Here the manager is killed with SIGKILL, at
random moments and at named crash points around those records, and
started again on the same journal and port, while a client
(tests/system/client_soak.c) submits and waits, reconnecting and
resuming from the last RESULT it saw. External workers keep their tasks
across the kills. After all: every task's side effect (a line in a marks
file) happened exactly once, and the client got exactly one successful
RESULT for each."""

import os
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import SLOW, Proc
from test_manager_journal import free_port

TIMEOUT = 120 * SLOW


def soak_bin(xylem_bin):
    # build/src/cli/xylem -> build/tests/system/client_soak
    path = Path(xylem_bin).resolve().parents[2] / "tests/system/client_soak"
    if not path.exists():
        pytest.skip(f"no {path}")
    return str(path)


class Standing:
    """`xylem manager --journal` with no local workers, on a fixed port;
    killed and started again at will."""

    def __init__(self, xylem, secret_file, journal, env=None):
        self.xylem, self.secret_file, self.journal = \
            xylem, secret_file, journal
        self.port = free_port()
        self.p = None
        self.outputs = []
        self.start(env)

    def start(self, env=None):
        if self.p:
            self.outputs.append(self.p.output)
        self.p = self.xylem.start(
            "manager", "--workers", 0, "--port", self.port, "--host",
            "127.0.0.1", "--secret-file", self.secret_file, "--journal",
            self.journal, env=env)
        self.p.wait_line(r"listening on port", 30)

    def kill(self):
        self.p.signal(signal.SIGKILL)
        self.p.wait(30)

    def log(self):
        return "".join(self.outputs) + (self.p.output if self.p else "")


def client(xylem, soak, mgr, n, marks):
    p = Proc([soak, "127.0.0.1", str(mgr.port), mgr.secret_file, str(n),
              str(marks), str(TIMEOUT)], env=xylem.env)
    xylem.procs.append(p)
    return p


def check(c, marks, n, mgr):
    assert c.wait(TIMEOUT) == 0, c.output[-3000:] + mgr.log()[-6000:]
    out = c.output
    assert f"done {n} " in out and "failed 0" in out, out[-2000:]
    # Exactly one RESULT per task reached the program ...
    answered = [line.split()[1] for line in out.splitlines()
                if line.startswith("result ")]
    assert sorted(answered, key=int) == [str(i) for i in range(1, n + 1)]
    # ... and each task's side effect happened exactly once.
    runs = marks.read_text().splitlines()
    counts = {}
    for line in runs:
        counts[line] = counts.get(line, 0) + 1
    twice = {k: v for k, v in counts.items() if v != 1}
    assert not twice, (twice, mgr.log()[-8000:])
    assert len(counts) == n, sorted(counts)


def workers(xylem, mgr, k=2):
    return [xylem.worker(mgr.port, mgr.secret_file, 2, "--lease", 120)
            for _ in range(k)]


def test_a_client_resumes_its_session_across_a_kill(xylem, xylem_bin,
                                                    tmp_path, secret_file):
    """Killed once half way: accepted tasks run once, their results
    (those that ended while the manager was dead too) reach the client
    once, by its ATTACH or its SUBMIT again."""
    soak = soak_bin(xylem_bin)
    marks = tmp_path / "marks"
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    workers(xylem, mgr)
    n = 40
    c = client(xylem, soak, mgr, n, marks)
    c.wait_line(r"^result 15 ", TIMEOUT)
    mgr.kill()
    time.sleep(0.5)
    mgr.start()
    check(c, marks, n, mgr)
    log = mgr.log()
    assert "attached to its session" in log, log[-4000:]
    # The accepted tasks were made again from their records, and those
    # that were running when it died taken back from their workers.
    assert "accepted before and not finished: made again" in log, \
        log[-4000:]
    assert "adopted from worker" in log, log[-4000:]


@pytest.mark.parametrize("point", [
    "client-before-submit-record", "client-after-submit-record",
    "client-before-answer-record", "client-after-answer-record"])
def test_crash_points_around_client_records(xylem, xylem_bin, tmp_path,
                                            secret_file, point):
    """The manager kills itself at a named point around the 5th SUBMIT
    or ANSWER record; started again, every task runs once and is
    answered once."""
    soak = soak_bin(xylem_bin)
    marks = tmp_path / "marks"
    env = dict(xylem.env, XYLEM_CRASH_POINT=point, XYLEM_CRASH_AFTER="5")
    mgr = Standing(xylem, secret_file, tmp_path / "journal", env=env)
    workers(xylem, mgr)
    n = 12
    c = client(xylem, soak, mgr, n, marks)
    rc = mgr.p.wait(TIMEOUT)
    assert rc == -signal.SIGKILL, mgr.log()[-3000:]
    mgr.start()
    if point == "client-after-submit-record":
        # The SUBMIT recorded before its ACCEPTED was not dispatched:
        # the manager started again makes it from its record, before
        # any client is back.
        mgr.p.wait_line(r"\d+ clients' tasks accepted before and not "
                        r"finished: made again", 30)
    check(c, marks, n, mgr)


def test_random_kills_while_a_client_submits(xylem, xylem_bin, tmp_path,
                                             secret_file):
    """XYLEM_CLIENT_KILLS (default 20) SIGKILLs of the manager at random
    moments while a client submits and waits."""
    kills = int(os.environ.get("XYLEM_CLIENT_KILLS", "20"))
    soak = soak_bin(xylem_bin)
    marks = tmp_path / "marks"
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    workers(xylem, mgr)
    n = 12 * kills
    c = client(xylem, soak, mgr, n, marks)
    rng = random.Random(int(os.environ.get("XYLEM_SEED", "0")) or None)
    done = 0
    while done < kills and c.p.poll() is None:
        time.sleep(rng.uniform(0.05, 0.6))
        mgr.kill()
        done += 1
        time.sleep(rng.uniform(0, 0.2))
        mgr.start()
    check(c, marks, n, mgr)
    assert done == kills, (done, c.output[-2000:])
