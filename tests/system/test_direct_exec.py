"""A command that /bin/sh would only split into words, naming its program
by a path, runs without the shell (src/worker/simplecmd.h): the
program's parent is the worker itself, not `sh`, and it sees what it
would have seen through the shell (its words, PWD its sandbox). What has
a meaning to the shell, or a program found on PATH, still goes through
it, with the shell's own results ("not found" and 127, a script with no
#! line run by sh). Each task writes what it saw into a file that comes
back as its output."""

import shutil
import stat

from helpers import task, write_workflow

PYTHON = shutil.which("python3")
# The task's parent process, PWD against its real directory, and its
# argv, into the file "seen" (no redirection: the command must stay
# simple).
PROBE = ("import os, sys; open(\"seen\", \"w\").write(\" \".join(["
         "open(\"/proc/%d/comm\" % os.getppid()).read().strip(), "
         "str(os.environ.get(\"PWD\") == os.getcwd()), "
         "\"|\".join(sys.argv[1:])]))")


def test_simple_command_runs_without_the_shell(xylem, tmp_path):
    out = tmp_path / "out"
    tasks = [
        # Literal words and single quotes, a program by its path.
        task("direct", f"'{PYTHON}' -c '{PROBE}' 'a b' c=d ''",
             outputs=[(out / "direct", "seen")]),
        # The same with a leading exec.
        task("exec", f"exec {PYTHON} -c '{PROBE}' x",
             outputs=[(out / "exec", "seen")]),
        # A variable: the shell's (it expands it).
        task("shell", f"{PYTHON} -c '{PROBE}' \"$XY_PROBE_WORD\"",
             outputs=[(out / "shell", "seen")],
             env={"XY_PROBE_WORD": "from the shell"}),
        # Found on PATH: the shell's too.
        task("path", f"python3 -c '{PROBE}' y",
             outputs=[(out / "path", "seen")]),
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode == 0, r.output
    parent, pwd, args = (out / "direct").read_text().split(" ", 2)
    assert parent != "sh" and args == "a b|c=d|", (parent, args)
    assert pwd == "True"
    parent, pwd, args = (out / "exec").read_text().split(" ", 2)
    assert parent != "sh" and pwd == "True" and args == "x"
    assert (out / "shell").read_text() == "sh True from the shell"
    assert (out / "path").read_text() == "sh True y"


def test_what_cannot_start_goes_to_the_shell(xylem, tmp_path):
    """A program that is not there fails as sh says (127, "not found");
    an executable script with no #! line (which execve refuses) is run
    by sh, as it always was."""
    script = tmp_path / "noshebang"
    script.write_text("printf 'ran by sh\\n' > said\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("script", "./noshebang", inputs=[(script, "noshebang")],
             outputs=[(out / "said", "said")]),
        task("missing", "/nonexistent/xy-no-such-program arg"),
    ])
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode != 0
    assert (out / "said").read_text() == "ran by sh\n"
    assert "1 succeeded, 1 failed" in r.output, r.output
    assert "127" in r.output and "not found" in r.output, r.output
