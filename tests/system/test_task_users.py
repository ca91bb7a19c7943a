"""Tasks under accounts of their own (docs/security.md): a worker started
as root with --task-users (here XYLEM_TASK_USERS, which `xylem run` passes
on to its local workers) runs each command task under one of those
accounts, in a sandbox that account owns with mode 0700. Two tasks
running at once on one worker, under two accounts, cannot read each
other's sandbox, nor write or chmod the cached object they were both
given: the next task reads the right bytes.

The accounts are made here with useradd and removed afterwards; the
tests skip when not run as root (nothing else can make accounts, or
switch to them)."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from helpers import task, write_workflow

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"),
    reason="needs root and useradd to make the task accounts")

GOOD = "the right bytes\n"


@pytest.fixture
def accounts():
    names = [f"xyt{os.getpid() % 100000}{c}" for c in "ab"]
    for n in names:
        subprocess.run(["userdel", n], capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", n], check=True,
                       capture_output=True)
    yield names
    for n in names:
        subprocess.run(["userdel", n], capture_output=True)


@pytest.fixture
def passable_tmp():
    """A TMPDIR the task accounts may pass through (pytest's own
    directories are 0700)."""
    d = tempfile.mkdtemp(prefix="xylem-tu-", dir="/tmp")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def spy(i, data, out):
    """Task i: says who it is, leaves a secret in its sandbox, waits for
    the other to have done so, then tries every sibling sandbox, the
    sandbox directory, and its input."""
    return task(f"t{i}", "{ id -un; echo SECRET-" + str(i) + " > secret; "
                "sleep 2; for n in $(seq 0 12); do "
                "[ -e ../$n ] && [ ../$n -ef . ] && continue; "
                "cat ../$n/secret 2>&1; done; ls .. 2>&1; "
                "echo EVIL >> in 2>&1; chmod u+w in 2>&1; "
                "cat in; } > out 2>&1",
                inputs=[(data, "in")], outputs=[(out, "out")],
                priority=10)


def test_two_tasks_under_two_accounts_cannot_reach_each_other(
        xylem, tmp_path, accounts, passable_tmp):
    data = tmp_path / "data"
    data.write_text(GOOD)
    outs = [tmp_path / f"o{i}" for i in (1, 2)]
    last = tmp_path / "last"
    wf = write_workflow(tmp_path / "wf.json", [
        spy(1, data, outs[0]), spy(2, data, outs[1]),
        task("after", "id -un > out; cat in >> out", inputs=[(data, "in")],
             outputs=[(last, "out")], priority=0)])
    env = {**xylem.env, "XYLEM_TASK_USERS": ",".join(accounts),
           "TMPDIR": passable_tmp, "XYLEM_LOG": "info"}
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "2",
                  env=env, timeout=90)
    assert r.returncode == 0, r.output
    got = [o.read_text() for o in outs]
    users = {g.splitlines()[0] for g in got}
    assert users == set(accounts), got  # one account each
    for i, g in enumerate(got):
        other = f"SECRET-{2 - i}"
        assert other not in g, g
        # The sibling sandbox was there, and refused.
        assert re.search(r"cat: '?\.\./\d+/secret'?: Permission denied", g), g
        assert "cannot open directory '..': Permission denied" in g, g
        assert "cannot create in: Permission denied" in g, g
        assert "changing permissions of 'in': Operation not permitted" in g
        assert g.rstrip().endswith(GOOD.strip()), g
    # The cached object is intact: the next task on the worker reads it.
    lines = last.read_text().splitlines()
    assert lines[0] in accounts
    assert lines[1:] == [GOOD.strip()]
    assert data.read_text() == GOOD
    assert "tasks run under 2 accounts of their own" in r.output


def test_outputs_become_the_workers(xylem, tmp_path, accounts,
                                    passable_tmp):
    """A task's output, once cached, is root's: a later task under the
    same account can neither write it nor chmod it."""
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    wf = write_workflow(tmp_path / "wf.json", [
        task("make", "echo made > out", outputs=[(out1, "out")],
             priority=10),
        task("use", "{ stat -c %U in; chmod u+w in 2>&1; echo x >> in 2>&1;"
             " cat in; } > out 2>&1", inputs=[(out1, "in")],
             outputs=[(out2, "out")])])
    env = {**xylem.env, "XYLEM_TASK_USERS": accounts[0],
           "TMPDIR": passable_tmp}
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "1",
                  env=env, timeout=90)
    assert r.returncode == 0, r.output
    got = out2.read_text()
    assert got.splitlines()[0] == "root", got
    assert "Operation not permitted" in got and "Permission denied" in got
    assert got.rstrip().endswith("made")


def test_refusals(xylem, tmp_path, accounts, secret_file):
    """Root's own account, an unknown one, or a cache the accounts
    cannot reach: the worker says so and exits."""
    for users, why in (("root", "root's account"),
                       ("no-such-xylem-user", "no account"),
                       (accounts[0], "cannot reach the cache")):
        w = xylem.start("worker", "127.0.0.1:1", "--secret-file",
                        secret_file, "--no-tls", "--task-users", users,
                        "--connect-timeout", "0", "--cache",
                        str(tmp_path / "cache"))
        rc = w.wait(30)
        assert rc in (1, 2), w.output
        assert why in w.output, w.output
