"""Progress on long operations: `xylem cwl` shows the progress line of
`xylem run` (src/cli/progress.c) on a terminal, and none with --quiet."""

import json
import os
import pty
import re
import subprocess
import textwrap

from helpers import SLOW


def cwl_on_a_tty(xylem_bin, tmp_path, *extra, args=None):
    tool = tmp_path / "nap.cwl"
    tool.write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sleep, "1.5"]
        inputs: []
        outputs: []
        """).lstrip())
    master, slave = pty.openpty()
    p = subprocess.Popen([xylem_bin, "cwl", *extra, "--outdir",
                          str(tmp_path / "o"), *(args or [str(tool)])],
                         stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    out, _ = p.communicate(timeout=60 * SLOW)
    os.close(master)
    return p.returncode, out.decode(), b"".join(chunks).decode()


def test_cwl_shows_progress_on_a_terminal(xylem_bin, tmp_path):
    rc, out, tty = cwl_on_a_tty(xylem_bin, tmp_path)
    assert rc == 0, tty
    assert "\r0/1 done, 1 running" in tty, repr(tty)
    # Erased before the result is printed.
    assert "\r\x1b[K" in tty
    assert out.strip() == "{}"


def test_cwl_quiet_has_no_progress(xylem_bin, tmp_path):
    rc, out, tty = cwl_on_a_tty(xylem_bin, tmp_path, "--quiet")
    assert rc == 0, tty
    assert "done," not in tty


def test_cwl_workflow_shows_progress_of_its_jobs(xylem_bin, tmp_path):
    """A scatter workflow: the line counts the scatter's jobs done of
    those known, rewritten in place, and is erased before the output."""
    (tmp_path / "nap.cwl").write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "sleep $0"]
        inputs:
          s: {type: string, inputBinding: {position: 1}}
        outputs: []
        """).lstrip())
    wf = tmp_path / "wf.cwl"
    wf.write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: Workflow
        requirements: {ScatterFeatureRequirement: {}}
        inputs:
          ss: string[]
        outputs: []
        steps:
          nap: {run: nap.cwl, in: {s: ss}, scatter: s, out: []}
        """).lstrip())
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"ss": ["0.2", "0.4", "1", "1.5", "2"]}))
    rc, out, tty = cwl_on_a_tty(xylem_bin, tmp_path,
                                args=[str(wf), str(job)])
    assert rc == 0, tty
    lines = re.findall(r"\r(\d+)/(\d+) done, (\d+) running", tty)
    assert lines, repr(tty)
    # All five jobs are known once the scatter starts; some were seen
    # done while others still ran.
    assert all(int(total) == 5 for _, total, _ in lines), lines
    assert any(0 < int(d) < 5 and int(r) > 0 for d, _, r in lines), lines
    assert "\r\x1b[K" in tty
    assert json.loads(out) == {}
