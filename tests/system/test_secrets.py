"""Secrets stay secret (docs/security.md): a task can read the
environment of every process of its user, its ancestors included
(/proc/PID/environ), and none of them shows the secret, whether the
manager took it from XYLEM_SECRET (local workers) or a worker did."""

import os
import subprocess

from helpers import task, write_workflow

MARKER = "s3cr3t-marker-7f1c"

# Prints, for this process's ancestors, how many hold the marker in
# their environment (/proc/PID/environ is what other processes read).
WALK = r'''
pid=$$; n=0; seen=0
while [ "$pid" -gt 1 ]; do
  seen=$((seen + 1))
  if tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -q MARKER; then
    n=$((n + 1)); echo "in $pid: $(tr '\0' ' ' < /proc/$pid/cmdline)" >&2
  fi
  pid=$(awk '{print $4}' /proc/$pid/stat)
done
echo "$n of $seen" > out
'''.replace("MARKER", MARKER)


def test_secret_not_in_any_ancestors_environment(xylem, tmp_path):
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("walk", WALK, outputs=[(out, "out")])])
    env = {**xylem.env, "XYLEM_SECRET": MARKER}
    r = xylem.run("run", wf, "--workers", "1", timeout=60, env=env)
    assert r.returncode == 0, r.output
    found, of = out.read_text().split(" of ")
    assert int(of) >= 3, out.read_text()  # shell, worker, manager at least
    assert found == "0", r.output


def test_worker_takes_the_secret_out_of_its_environment(xylem, tmp_path,
                                                        secret_file):
    """A worker given XYLEM_SECRET (as a batch job gives it) clears it:
    its own /proc/PID/environ no longer shows it once it runs."""
    secret = open(secret_file).read().strip()
    mgr, port = xylem.manager(write_workflow(tmp_path / "wf.json", [
        task("t", "sleep 1")]), secret_file)
    env = {**xylem.env, "XYLEM_SECRET": secret}
    w = xylem.start("worker", f"127.0.0.1:{port}", "--cores", "1", env=env)
    w.wait_line(r"connected to", 10)
    with open(f"/proc/{w.pid}/environ", "rb") as f:
        environ = f.read()
    assert secret.encode() not in environ
    assert mgr.wait(30) == 0, mgr.output


def test_secret_file_wins_and_the_variable_still_goes(xylem, tmp_path,
                                                      secret_file):
    """With both --secret-file and XYLEM_SECRET, the file's secret is
    used, and the variable is still taken out of every environment."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("walk", WALK, outputs=[(out, "out")])])
    env = {**xylem.env, "XYLEM_SECRET": MARKER}
    r = xylem.run("run", wf, "--workers", "1", "--secret-file",
                  secret_file, timeout=60, env=env)
    assert r.returncode == 0, r.output
    assert out.read_text().startswith("0 of "), r.output
