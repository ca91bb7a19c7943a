#!/usr/bin/env python3
"""What the journal costs warm Python calls (docs/durability.md,
"Results"; docs/python.md, "Journal").

Runs N no-op calls (``noop(i)`` returns ``i``) through
xylem.Executor(workers=2), all submitted then all waited for, in three
modes, alternating, best of R rounds each, all in this run on this
machine:

  none     no journal, calls sent one by one (bursts of submits off,
           `ex._batching.submits = False`): a journal turns bursts off
           (a burst is one task, which a program run again would not
           make the same), so this is the journal's own cost's baseline
  bursts   no journal, bursts on, as an Executor without a journal runs:
           what a program gives up, all told, for a journal
  journal  journal=DIR (a fresh one each round): each call's DONE and
           RESULT records written once per loop turn
  sync     journal=DIR, journal_sync=True: and fdatasync'd each turn

Each round makes its executor anew; its start and a warm-up batch (which
waits for the workers and starts the library instances; its calls are
other calls, noop(-i)) are not timed. Then the last sync round's program
is run again on its journal (a fresh executor): every call is answered
from the journal, none runs.

Prints each mode's calls/s and the ratios to no journal (target: the
default mode under 5% slower, a ratio of at least 0.95), the CPU time a
call costs the program's process (its manager's thread included; the
least of the rounds: on a loaded machine a steadier figure than the
rate), and the journal's size.

    XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python \\
        bench/journal_calls.py [--calls N] [--rounds R]
"""

import argparse
import os
import resource
import shutil
import tempfile
import time

import xylem


def noop(i):
    return i


def one(mode, n, warmup, journal):
    kw = {}
    if mode not in ("none", "bursts"):
        kw = {"journal": journal, "journal_sync": mode == "sync"}
    with xylem.Executor(workers=2, **kw) as ex:
        if mode == "none":
            ex._batching.submits = False
        for f in [ex.submit(noop, -1 - i) for i in range(warmup)]:
            f.result(timeout=120)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        futures = [ex.submit(noop, i) for i in range(n)]
        for i, f in enumerate(futures):
            assert f.result(timeout=300) == i
        secs = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        skipped = ex.stats()["tasks_skipped"]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return secs, cpu, skipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=200)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xylem-bench-")
    try:
        best, cpu = {}, {}
        journal = os.path.join(work, "j")
        for _ in range(a.rounds):
            for mode in ("none", "bursts", "journal", "sync"):
                shutil.rmtree(journal, ignore_errors=True)
                secs, c, _ = one(mode, a.calls, a.warmup, journal)
                best[mode] = min(best.get(mode, secs), secs)
                cpu[mode] = min(cpu.get(mode, c), c)
        size = sum(os.path.getsize(os.path.join(journal, f))
                   for f in ("log", "snapshot")
                   if os.path.exists(os.path.join(journal, f)))
        again, _, skipped = one("journal", a.calls, a.warmup, journal)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = a.calls
    print(f"no-op warm calls: {n}, 2 workers, best of {a.rounds} rounds")
    print(f"  no journal:          {n / best['none']:9.1f} calls/s"
          f"  ({best['none']:.3f} s), calls one by one")
    print(f"  no journal, bursts:  {n / best['bursts']:9.1f} calls/s"
          f"  ({best['bursts']:.3f} s)  the journal's rate is"
          f" {best['bursts'] / best['journal']:.3f} of it")
    r = best["none"] / best["journal"]
    print(f"  journal:             {n / best['journal']:9.1f} calls/s"
          f"  ({best['journal']:.3f} s)  ratio {r:.3f} (target >= 0.95)"
          f" {'ok' if r >= 0.95 else 'BELOW TARGET'}")
    r = best["none"] / best["sync"]
    print(f"  journal_sync:        {n / best['sync']:9.1f} calls/s"
          f"  ({best['sync']:.3f} s)  ratio {r:.3f}")
    us = {m: cpu[m] * 1e6 / n for m in cpu}
    print(f"  CPU of the program's process (manager thread included), a"
          f" call: none {us['none']:.1f} us, journal {us['journal']:.1f} us"
          f" (+{us['journal'] - us['none']:.1f}), sync {us['sync']:.1f} us"
          f" (+{us['sync'] - us['none']:.1f})")
    print(f"  journal size:        {size} bytes"
          f" ({size / (n + a.warmup):.0f} B a call)")
    print(f"  run again (all from the journal): {n / again:9.1f} calls/s"
          f"  ({again:.3f} s), {skipped} answered from the journal")


if __name__ == "__main__":
    main()
