#!/usr/bin/env python3
"""stream_calls.py: a long stream of no-op warm calls through
xylem.Executor, submitted in windows (issue 11): calls a second and the
resident memory of this process, which holds the manager, at checkpoints.
The baseline, in the same run, is the first checkpoint: memory and rate
should stay flat within 10% from there to the last.

usage: bench/stream_calls.py [--calls 10000000] [--window 100000]
                             [--checkpoints 1000000,5000000,10000000]
                             [--workers 2]
In-tree: XYLEM_BUILD_DIR=build PYTHONPATH=python (docs/python.md).
"""

import argparse
import concurrent.futures as cf
import os
import sys
import time

import xylem


def noop():
    return None


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stream_arguments(doc, calls, window, checkpoints):
    """The options of a stream benchmark (this one, stream_files.py)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=calls)
    ap.add_argument("--window", type=int, default=window)
    ap.add_argument("--checkpoints", default=checkpoints)
    ap.add_argument("--workers", type=int, default=2)
    return ap


def parse_stream_arguments(ap):
    """ap's arguments, the checkpoints checked and sorted into marks."""
    a = ap.parse_args()
    try:
        a.marks = sorted(int(x) for x in a.checkpoints.split(","))
    except ValueError:
        ap.error("--checkpoints wants numbers separated by commas")
    if a.calls < 1 or a.window < 1 or not a.marks or \
            a.marks[0] < a.window or a.marks[-1] > a.calls:
        ap.error("want calls >= 1, window >= 1, and checkpoints between"
                 " the window and the calls")
    return a


def main():
    a = parse_stream_arguments(stream_arguments(
        __doc__, 10_000_000, 100_000, "1000000,5000000,10000000"))
    marks = a.marks
    rows = []
    with xylem.Executor(workers=a.workers) as ex:
        ex.submit(noop).result()
        done, t_mark, n_mark = 0, time.monotonic(), 0
        while done < a.calls:
            n = min(a.window, a.calls - done)
            futures = [ex.submit(noop) for _ in range(n)]
            cf.wait(futures)
            bad = [f for f in futures if f.exception() is not None]
            if bad:
                sys.exit(f"a call failed: {bad[0].exception()!r}")
            done += n
            if marks and done >= marks[0]:
                now = time.monotonic()
                rate = (done - n_mark) / (now - t_mark)
                rows.append((done, rss_mib(), rate))
                print(f"{done:>10,} calls: RSS {rows[-1][1]:8.1f} MiB,"
                      f" {rate:8.0f} calls/s since the last mark",
                      flush=True)
                t_mark, n_mark = now, done
                marks.pop(0)
    first, last = rows[0], rows[-1]
    print(f"from {first[0]:,} to {last[0]:,} calls: RSS ratio"
          f" {last[1] / first[1]:.3f}, rate ratio {last[2] / first[2]:.3f}"
          f" (target: both within 10% of 1)")


if __name__ == "__main__":
    main()
