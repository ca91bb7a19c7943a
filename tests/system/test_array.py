"""Task arrays (docs/workflow.md, "Task arrays"): one workflow entry, or
`xylem run --array/--each-line`, that stands for many tasks, each with
its own outputs, retries and result."""

import json
import subprocess


def run(xylem_bin, cwd, *args, timeout=120):
    return subprocess.run([xylem_bin, "run", "--workers", "2", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_array_outputs_retries_results(xylem_bin, tmp_path):
    (tmp_path / "words.txt").write_text("alpha\nbeta\ngamma\n")
    flag = tmp_path / "flag"
    wf = {"tasks": [
        {"id": "sq", "array": {"range": 50}, "retries": 1,
         # Index 7 fails once (it leaves flag), then succeeds on retry;
         # index 13 always fails.
         "command": f"echo $((XY_INDEX * XY_INDEX)) > out.txt;"
                    f" if [ $XY_INDEX = 7 ] && [ ! -e {flag} ]; then"
                    f" touch {flag}; exit 3; fi; test $XY_INDEX != 13",
         "outputs": [{"path": "res/sq-${XY_INDEX}.txt", "as": "out.txt"}]},
        {"id": "up", "array": {"lines": "words.txt"},
         "command": "echo \"$XY_LINE\" | tr a-z A-Z > up.txt",
         "outputs": [{"path": "up/${XY_INDEX}-${XY_LINE}.txt",
                      "as": "up.txt"}]}]}
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    p = run(xylem_bin, tmp_path, "wf.json")
    assert p.returncode == 1, p.stderr
    assert "53 tasks: 52 succeeded, 1 failed" in p.stderr, p.stderr
    assert 'task "sq[13]"' in p.stderr
    assert flag.exists()
    for i in range(50):
        out = tmp_path / "res" / f"sq-{i}.txt"
        if i == 13:
            assert not out.exists()  # a failed task's output stays away
        else:
            assert out.read_text() == f"{i * i}\n"
    assert (tmp_path / "up" / "1-beta.txt").read_text() == "BETA\n"
    assert (tmp_path / "up" / "2-gamma.txt").read_text() == "GAMMA\n"


def test_array_command_line(xylem_bin, tmp_path):
    p = run(xylem_bin, tmp_path, "--array", "300", "--",
            "echo $XY_INDEX >> /dev/null; test $XY_INDEX != 123")
    assert p.returncode == 1
    assert "300 tasks: 299 succeeded, 1 failed" in p.stderr, p.stderr
    assert 'task "array[123]"' in p.stderr
    (tmp_path / "l.txt").write_text("a\nb\n")
    p = run(xylem_bin, tmp_path, "--each-line", "l.txt", "--",
            'test "$XY_LINE" = a -o "$XY_LINE" = b')
    assert p.returncode == 0, p.stderr


def test_array_bad_entries(xylem_bin, tmp_path):
    for arr in ({"range": 0}, {"range": 2, "lines": "x"}, {"lines": "none"},
                {"rang": 3}):
        wf = {"tasks": [{"id": "a", "command": "true", "array": arr}]}
        (tmp_path / "wf.json").write_text(json.dumps(wf))
        p = run(xylem_bin, tmp_path, "wf.json")
        assert p.returncode == 2, (arr, p.stderr)


def test_array_unsafe_line_fails_its_index(xylem_bin, tmp_path):
    """A line that makes a sandbox name unsafe fails that index alone."""
    (tmp_path / "l.txt").write_text("good\n../bad\n")
    wf = {"tasks": [{"id": "w", "array": {"lines": "l.txt"},
                     "command": "echo hi > \"$XY_LINE\"",
                     "outputs": [{"path": "o/${XY_INDEX}.txt",
                                  "as": "${XY_LINE}"}]}]}
    (tmp_path / "wf.json").write_text(json.dumps(wf))
    p = run(xylem_bin, tmp_path, "wf.json")
    assert p.returncode == 1
    assert "2 tasks: 1 succeeded, 1 failed" in p.stderr, p.stderr
    assert 'task "w[1]": not submitted' in p.stderr
    assert (tmp_path / "o" / "0.txt").read_text() == "hi\n"
