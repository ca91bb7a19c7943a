"""Progress on long operations: `xylem cwl` shows the progress line of
`xylem run` (src/cli/progress.c) on a terminal, and none with --quiet."""

import os
import pty
import subprocess
import textwrap

from helpers import SLOW


def cwl_on_a_tty(xylem_bin, tmp_path, *extra):
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
                          str(tmp_path / "o"), str(tool)],
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
