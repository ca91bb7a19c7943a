"""Executor.map in chunks against ProcessPoolExecutor.map, same machine,
same run (docs/python.md, "Batched calls").

For each N in --calls: N no-op calls (and, with --sleep-ms, N calls of
that many ms) through xylem.Executor(workers=2).map with the given
chunksize and with the automatic one, and through
ProcessPoolExecutor(2).map with the given chunksize. Each run is a
process of its own, so that its peak RSS (printed) is its own: the
results are consumed as they come and checked in order, never kept.
Each figure is the best of --rounds (3) runs.

    python3 bench/batch_map.py --calls 50000,1000000 --chunksize 100
    python3 bench/batch_map.py --calls 4000 --sleep-ms 1
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def noop(x):
    return x


def nap(x, ms):
    time.sleep(ms / 1000)
    return x


def one(kind, n, chunksize, ms):
    if ms:
        import functools
        fn = functools.partial(nap, ms=ms)
    else:
        fn = noop
    if kind == "pool":
        from concurrent.futures import ProcessPoolExecutor
        ex = ProcessPoolExecutor(2)
        list(ex.map(fn, range(200), chunksize=10))  # start the processes
    else:
        import xylem
        ex = xylem.Executor(workers=2)
        list(ex.map(fn, range(200)))
    cs = None if chunksize == 0 else chunksize
    t = time.perf_counter()
    want = 0
    for v in (ex.map(fn, range(n), chunksize=cs) if (cs or kind != "pool")
              else ex.map(fn, range(n))):
        if v != want:
            raise SystemExit(f"result {want} out of order: {v}")
        want += 1
    took = time.perf_counter() - t
    assert want == n
    ex.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "rss_mib": rss}))


def run(kind, n, chunksize, ms, rounds):
    """The best of rounds runs, each a process of its own."""
    best = None
    for _ in range(rounds):
        out = subprocess.run([sys.executable, __file__, "--one", kind,
                              "--calls", str(n), "--chunksize",
                              str(chunksize), "--sleep-ms", str(ms)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", default="50000,1000000")
    ap.add_argument("--chunksize", type=int, default=100)
    ap.add_argument("--sleep-ms", type=float, default=0)
    ap.add_argument("--rounds", type=int, default=3,
                    help="best of this many runs of each (default 3)")
    ap.add_argument("--one")
    a = ap.parse_args()
    if a.one:
        return one(a.one, int(a.calls), a.chunksize, a.sleep_ms)
    for n in (int(x) for x in a.calls.split(",")):
        pool = run("pool", n, a.chunksize, a.sleep_ms, a.rounds)
        xy = run("xylem", n, a.chunksize, a.sleep_ms, a.rounds)
        auto = run("xylem", n, 0, a.sleep_ms, a.rounds)
        print(f"N={n} sleep={a.sleep_ms} ms, chunksize {a.chunksize}:")
        for name, r in (("ProcessPoolExecutor.map", pool),
                        ("xylem map", xy), ("xylem map, auto chunks", auto)):
            print(f"  {name:26s} {n / r['seconds']:12.0f} calls/s"
                  f"  {r['seconds']:8.2f} s  peak RSS {r['rss_mib']:.0f} MiB")
        print(f"  ratio xylem/pool: {pool['seconds'] / xy['seconds']:.2f}"
              f" (auto: {pool['seconds'] / auto['seconds']:.2f};"
              f" target >= 0.5)")
        if a.sleep_ms:
            ideal = n * a.sleep_ms / 1000 / 2
            print(f"  2 workers' ideal {ideal:.2f} s: xylem"
                  f" {ideal / xy['seconds']:.2f}, auto"
                  f" {ideal / auto['seconds']:.2f}, pool"
                  f" {ideal / pool['seconds']:.2f} of it (target >= 0.9)")
            # What a call really takes here (a sleep overshoots, more so
            # on a loaded machine), measured in this process.
            t = time.perf_counter()
            for i in range(500):
                nap(i, a.sleep_ms)
            real = (time.perf_counter() - t) / 500 * n / 2
            print(f"  with the call's measured {real * 2000 / n:.3f} ms:"
                  f" ideal {real:.2f} s: xylem {real / xy['seconds']:.2f},"
                  f" auto {real / auto['seconds']:.2f}, pool"
                  f" {real / pool['seconds']:.2f} of it")


if __name__ == "__main__":
    main()
