"""Python calls under accounts of their own (docs/security.md, "Tasks
under accounts of their own"): an Executor whose local workers run as
root with XYLEM_TASK_USERS runs each warm call in a library instance
under one of those accounts (an instance holds its account while it
lives), and each fresh call as a command task under one. Two calls
running at once run as two accounts, in sandboxes of their own (0700)
that the other cannot read; a call cannot write or chmod its input
object, and the next call reads the right bytes; what a warm call leaves
running is killed when its instance ends.

The accounts are made with useradd and removed afterwards; the tests
skip when not run as root."""

import errno
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

import pyfuncs_users as fu
import xylem
from conftest import TIMEOUT

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd"),
    reason="needs root and useradd to make the task accounts")

GOOD = "the right bytes\n"


@pytest.fixture
def accounts(monkeypatch):
    names = [f"xyp{os.getpid() % 100000}{c}" for c in "ab"]
    for n in names:
        subprocess.run(["userdel", n], capture_output=True)
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", n], check=True,
                       capture_output=True)
    monkeypatch.setenv("XYLEM_TASK_USERS", ",".join(names))
    yield names
    for n in names:
        subprocess.run(["pkill", "-KILL", "-u", n], capture_output=True)
    time.sleep(0.2)
    for n in names:
        subprocess.run(["userdel", n], capture_output=True)


@pytest.fixture
def meeting():
    """A directory both accounts may write, for the calls to meet in."""
    d = tempfile.mkdtemp(prefix="xylem-tu-meet-", dir="/tmp")
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def uids(names):
    return {pwd.getpwnam(n).pw_uid for n in names}


@pytest.mark.parametrize("fresh", [False, True])
def test_two_calls_run_as_two_accounts_and_cannot_reach_each_other(
        make_executor, accounts, meeting, fresh):
    ex = make_executor(workers=1, cores_per_worker=2, fresh=fresh)
    fs = [ex.submit(fu.spy, meeting, i) for i in (0, 1)]
    got = [f.result(2 * TIMEOUT) for f in fs]
    assert {g["uid"] for g in got} == uids(accounts), got
    for g in got:
        assert g["euid"] == g["uid"], g
        assert g["other"] is not None, g  # they ran at once
        # Its sandbox, and its instance's, are its account's, 0700.
        assert (g["box_uid"], g["box_mode"]) == (g["uid"], 0o700), g
        assert (g["lib_uid"], g["lib_mode"]) == (g["uid"], 0o700), g
        # The other's sandbox is there, and refused; so is the list.
        assert g["read"] == "PermissionError", g
        assert g["list"] == "PermissionError", g


@pytest.mark.parametrize("fresh", [False, True])
def test_a_call_cannot_alter_its_input(make_executor, accounts, tmp_path,
                                       fresh):
    ex = make_executor(workers=1, cores_per_worker=1, fresh=fresh)
    src = tmp_path / "in.txt"
    src.write_text(GOOD)
    inp = [xylem.File(src, name="a.txt")]
    r = ex.options(inputs=inp).submit(fu.poke, "a.txt").result(TIMEOUT)
    assert r["uid"] in uids(accounts), r
    assert r["write"] == "PermissionError", r
    assert r["chmod"] == "PermissionError", r
    assert r["text"] == GOOD, r
    uid, text = ex.options(inputs=inp).submit(fu.read_text,
                                              "a.txt").result(TIMEOUT)
    assert uid in uids(accounts) and text == GOOD
    assert src.read_text() == GOOD


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_what_a_warm_call_leaves_running_ends_with_its_instance(
        make_executor, accounts, meeting):
    ex = make_executor(workers=1, cores_per_worker=1)
    pidfile = os.path.join(meeting, "pid")
    pid = ex.submit(fu.leave_behind, pidfile).result(TIMEOUT)
    st = os.stat(f"/proc/{pid}")
    assert st.st_uid in uids(accounts)
    assert alive(pid)  # the instance lives on, and so does it
    ex.shutdown(wait=True)
    end = time.monotonic() + TIMEOUT
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(pid), f"process {pid} outlived its instance"


def test_a_sandbox_is_taken_back_before_it_is_pooled(make_executor,
                                                     accounts, meeting):
    """A call's sandbox is pooled for the next call (before, one of a
    task account was removed instead), and taken back first: what lives
    on under the account after a warm call (here a thread of its
    instance) cannot add to it once the call is over, and a default ACL
    the call set on it is gone; the next call finds it empty."""
    ex = make_executor(workers=1, cores_per_worker=1)
    box = ex.submit(fu.plant_later, meeting).result(TIMEOUT)
    done = os.path.join(meeting, "planted")
    end = time.monotonic() + TIMEOUT
    while not os.path.exists(done) and time.monotonic() < end:
        time.sleep(0.05)
    with open(done) as f:
        assert f.read() == "PermissionError"
    st = os.stat(box)
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    with pytest.raises(OSError) as e:
        os.getxattr(box, "system.posix_acl_default")
    assert e.value.errno == errno.ENODATA
    where, names = ex.submit(fu.listing).result(TIMEOUT)
    assert names == [], (where, names)
