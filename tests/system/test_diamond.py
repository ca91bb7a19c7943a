"""A diamond of real files: A writes x, B and C read x and write y and z, D
reads y and z. Dependencies come only from the files, and the final content
proves each task saw what the one before it wrote. Also runs the
sort-merge example and checks it against the plain shell pipeline."""

import shutil
import subprocess

from helpers import REPO, task, write_workflow


def diamond(tmp_path):
    out = tmp_path / "out"
    return [
        # Listed out of order on purpose: the order of the file must not
        # matter, only the data.
        task("D", "cat y z > result",
             inputs=[(out / "y", "y"), (out / "z", "z")],
             outputs=[(out / "result", "result")]),
        task("B", "tr a-z A-Z < x > y",
             inputs=[(out / "x", "x")], outputs=[(out / "y", "y")]),
        task("A", "printf 'hello diamond\\n' > x",
             outputs=[(out / "x", "x")]),
        task("C", "rev x > z",
             inputs=[(out / "x", "x")], outputs=[(out / "z", "z")]),
    ]


def test_diamond(xylem, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", diamond(tmp_path))
    r = xylem.run("run", wf, "--workers", "2", timeout=60)
    assert r.returncode == 0, r.output
    out = tmp_path / "out"
    assert (out / "x").read_text() == "hello diamond\n"
    assert (out / "y").read_text() == "HELLO DIAMOND\n"
    assert (out / "z").read_text() == "dnomaid olleh\n"
    assert (out / "result").read_text() == "HELLO DIAMOND\ndnomaid olleh\n"
    assert "4 succeeded, 0 failed" in r.output


def test_diamond_one_worker(xylem, tmp_path):
    """The same on a single one-core worker, where every hop stays local."""
    wf = write_workflow(tmp_path / "wf.json", diamond(tmp_path))
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "1",
                  timeout=60)
    assert r.returncode == 0, r.output
    assert (tmp_path / "out/result").read_text() == \
        "HELLO DIAMOND\ndnomaid olleh\n"


def test_relative_paths_and_input_file(xylem, tmp_path):
    """Relative paths start at the current directory, as the issue says,
    not at the workflow file's; an input from the user's disk is read and
    its output comes back there."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in/words.txt").write_text("b\na\nc\n")
    (tmp_path / "flows").mkdir()
    write_workflow(tmp_path / "flows/wf.json", [
        task("sort", "sort w > s", inputs=[("in/words.txt", "w")],
             outputs=[("sorted/s.txt", "s")], env={"LC_ALL": "C"})])
    r = xylem.run("run", "flows/wf.json", "--workers", "1", timeout=60,
                  cwd=tmp_path)
    assert r.returncode == 0, r.output
    assert (tmp_path / "sorted/s.txt").read_text() == "a\nb\nc\n"


def test_sort_merge_example(xylem, tmp_path):
    """examples/sort-merge runs as it is and matches the shell pipeline."""
    ex = tmp_path / "sort-merge"
    shutil.copytree(REPO / "examples/sort-merge", ex,
                    ignore=shutil.ignore_patterns("out"))
    r = xylem.run("run", "workflow.json", "--workers", "2", timeout=120,
                  cwd=ex)
    assert r.returncode == 0, r.output
    check = subprocess.run([str(ex / "check.sh")], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    report = (ex / "out/report.txt").read_text()
    assert report.startswith("words: 14500\n")


def test_input_script_and_directory(xylem, tmp_path):
    """An input script runs as ./script in the sandbox, and a directory
    input arrives whole, with its tree (as a symbolic link into the
    cache, hence find -L)."""
    script = tmp_path / "count.sh"
    script.write_text("#!/bin/sh\nfind -L data -type f | sort > listing\n"
                      "cat data/sub/deep.txt >> listing\n")
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "top.txt").write_text("top\n")
    (data / "sub" / "deep.txt").write_text("deep\n")
    out = tmp_path / "out" / "listing"
    wf = write_workflow(tmp_path / "wf.json", [
        task("list", "./count.sh",
             inputs=[(script, "count.sh"), (data, "data")],
             outputs=[(out, "listing")])])
    r = xylem.run("run", wf, "--workers", "1", timeout=60)
    assert r.returncode == 0, r.output
    assert out.read_text() == "data/sub/deep.txt\ndata/top.txt\ndeep\n"
