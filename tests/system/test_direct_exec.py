"""A command that /bin/sh would only split into words runs without the
shell (src/worker/simplecmd.h): the program's parent is the worker
itself, not `sh`; what has a meaning to the shell still goes through it,
with the shell's own results (its builtin `echo`, "not found" and 127, a
script with no #! line run by sh). Each task writes what it saw into a
file that comes back as its output."""

import os
import stat

from helpers import task, write_workflow

# The name of the task's parent process, and the task's own argv, into
# the file "seen" (no redirection: the command must stay simple).
PROBE = ("import os, sys; open(\"seen\", \"w\").write(open(\"/proc/%d/comm\""
         " % os.getppid()).read().strip() + \" \" + \"|\".join(sys.argv[1:]))")


def test_simple_command_runs_without_the_shell(xylem, tmp_path):
    out = tmp_path / "out"
    tasks = [
        # Literal words and single quotes: straight to python3.
        task("direct", f"python3 -c '{PROBE}' 'a b' c=d ''",
             outputs=[(out / "direct", "seen")]),
        # The same with a leading exec.
        task("exec", f"exec python3 -c '{PROBE}' x",
             outputs=[(out / "exec", "seen")]),
        # A variable: the shell's (it expands it).
        task("shell", f"python3 -c '{PROBE}' \"$XY_PROBE_WORD\"",
             outputs=[(out / "shell", "seen")],
             env={"XY_PROBE_WORD": "from the shell"}),
        # dash's builtin echo turns \\t into a tab; /usr/bin/echo would not.
        task("builtin", "echo 'a\\tb' > echoed",
             outputs=[(out / "echoed", "echoed")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode == 0, r.output
    parent, args = (out / "direct").read_text().split(" ", 1)
    assert parent != "sh" and args == "a b|c=d|", (parent, args)
    parent, args = (out / "exec").read_text().split(" ", 1)
    assert parent != "sh" and args == "x", (parent, args)
    assert (out / "shell").read_text() == "sh from the shell"
    assert (out / "echoed").read_text() == "a\tb\n"


def test_what_cannot_start_goes_to_the_shell(xylem, tmp_path):
    """A program not on PATH fails as sh says (127, "not found"); an
    executable script with no #! line (which execve refuses) is run by
    sh, as it always was."""
    script = tmp_path / "noshebang"
    script.write_text("printf 'ran by sh\\n' > said\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("script", "./noshebang", inputs=[(script, "noshebang")],
             outputs=[(out / "said", "said")]),
        task("missing", "xy-no-such-program arg"),
    ])
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode != 0
    assert (out / "said").read_text() == "ran by sh\n"
    assert "1 succeeded, 1 failed" in r.output, r.output
    assert "127" in r.output and "not found" in r.output, r.output
