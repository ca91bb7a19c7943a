#!/usr/bin/env python3
"""stream_files.py: a long stream of warm calls through xylem.Executor,
each with files of its own (issue 11, "State only grows"): an input
declared for the call alone (xylem.File(..., per_call=True)) and an
output, both given back to the manager once the call has ended, as the
Parsl executor's standard streams and staged copies are. At checkpoints
it prints the resident memory of this process, which holds the manager,
the C heap in use (malloc's, from mallinfo2: the manager's state, where
the resident memory also counts what the allocator keeps free), the
Python objects (sys.getallocatedblocks), the manager's count of files
and objects, and calls a second. The baseline, in the same run, is the
first checkpoint: memory should stay flat within 10% from there to the
last, and the files at the few the calls in flight hold.

usage: bench/stream_files.py [--calls 1000000] [--window 10000]
                             [--checkpoints 100000,500000,1000000]
                             [--workers 2] [--keep | --outputs-only]
--keep declares the inputs once and keeps them (xylem.File without
per_call, never released), for a look at what grows when nothing is
given back. --outputs-only gives each call an output alone (as a Parsl
task's standard streams are): the manager then serves nothing, and its
transfer server remembers no token (each input it serves adds one, kept
for the token's hour; bench/README.md).
In-tree: XYLEM_BUILD_DIR=build PYTHONPATH=python (docs/python.md).
"""

import concurrent.futures as cf
import ctypes
import os
import shutil
import sys
import tempfile
import time

import xylem
from stream_calls import parse_stream_arguments, rss_mib, stream_arguments


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_mib():
    """The C heap in use (glibc's mallinfo2: every arena), or 0."""
    try:
        f = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return 0.0
    f.restype = _Mallinfo2
    m = f()
    return (m.uordblks + m.hblkhd) / 2**20


def copy(src, dst):
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())


def make(dst, text):
    with open(dst, "w") as g:
        g.write(text)


def window(ex, d, first, n, keep, outputs_only):
    """n calls, each copying an input of its own to an output of its
    own (or writing the output alone); waits for them, then removes both
    sides' files."""
    futures = []
    for i in range(first, first + n):
        src, dst = os.path.join(d, f"in-{i}"), os.path.join(d, f"out-{i}")
        out = [xylem.File(dst, name="out")]
        if outputs_only:
            futures.append(ex.options(outputs=out).submit(
                make, "out", f"call {i}\n"))
            continue
        with open(src, "w") as f:
            f.write(f"call {i}\n")
        futures.append(ex.options(
            inputs=[xylem.File(src, name="in", per_call=not keep)],
            outputs=out).submit(copy, "in", "out"))
    cf.wait(futures)
    bad = [f for f in futures if f.exception() is not None]
    if bad:
        sys.exit(f"a call failed: {bad[0].exception()!r}")
    for i in range(first, first + n):
        for p in (f"in-{i}", f"out-{i}"):
            if os.path.exists(os.path.join(d, p)):
                os.unlink(os.path.join(d, p))


def main():
    ap = stream_arguments(__doc__, 1_000_000, 10_000,
                          "100000,500000,1000000")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--keep", action="store_true")
    how.add_argument("--outputs-only", action="store_true")
    a = parse_stream_arguments(ap)
    marks = a.marks
    rows = []
    d = tempfile.mkdtemp(prefix="xylem-stream-files-")
    try:
        with xylem.Executor(workers=a.workers) as ex:
            window(ex, d, 0, 100, a.keep, a.outputs_only)  # warm-up
            done, t_mark, n_mark = 0, time.monotonic(), 0
            while done < a.calls:
                n = min(a.window, a.calls - done)
                window(ex, d, 100 + done, n, a.keep, a.outputs_only)
                done += n
                if marks and done >= marks[0]:
                    now = time.monotonic()
                    rate = (done - n_mark) / (now - t_mark)
                    st = ex.stats()
                    rows.append((done, rss_mib(), rate, st["files"],
                                 st["objects"], heap_mib(),
                                 sys.getallocatedblocks()))
                    print(f"{done:>10,} calls: RSS {rows[-1][1]:6.1f} MiB,"
                          f" heap {rows[-1][5]:6.2f} MiB, {rows[-1][6]:,}"
                          f" Python blocks, {st['files']:,} files,"
                          f" {st['objects']:,} objects, {rate:5.0f}"
                          f" calls/s since the last mark", flush=True)
                    t_mark, n_mark = now, done
                    marks.pop(0)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    first, last = rows[0], rows[-1]
    print(f"from {first[0]:,} to {last[0]:,} calls: RSS ratio"
          f" {last[1] / first[1]:.3f}, heap ratio {last[5] / first[5]:.3f},"
          f" Python blocks ratio {last[6] / first[6]:.3f}, files"
          f" {first[3]:,} -> {last[3]:,},"
          f" objects {first[4]:,} -> {last[4]:,}, rate ratio"
          f" {last[2] / first[2]:.3f} (target: RSS within 10% of 1)")


if __name__ == "__main__":
    main()
