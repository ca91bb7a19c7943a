#!/usr/bin/env python3
"""No-op Python calls: xylem.Executor against Parsl's HTEX and Dask.

Runs N no-op calls (``noop(i)`` returns ``i``) with two one-core workers on
this machine, in the same run, through:

  xylem   xylem.Executor(workers=2), warm calls (the default): all N
          submitted, then all waited for; then N more through ex.map on
          the same executor
  htex    Parsl 2026.10.26, HighThroughputExecutor(max_workers_per_node=2,
          cores_per_worker=1) on a LocalProvider (one block), the no-op as
          a python_app
  dask    dask.distributed LocalCluster(n_workers=2, threads_per_worker=1,
          processes=True), client.submit(noop, i, pure=False) for each,
          then client.gather

With --fn-bytes N the no-op closes over N bytes of data, so that its
pickle carries them (as a function defined in __main__ that takes data
with it): Xylem sends a function's pickle over 4 KiB to each worker once,
as an object, rather than with every call (docs/python.md).

Each is timed from its first submit to its last result. Start-up is timed
apart and not counted: making the executor (parsl.load for HTEX, the
cluster and client for Dask) and a warm-up batch of --warmup calls, which
waits for the workers to connect and, for Xylem, starts the library
instances. The calls/s with start-up counted are printed too. Targets
(DESIGN.md): Xylem/HTEX >= 10, Xylem/Dask >= 3, on the submit-all figure.

Each system runs in a process of its own (this script with --phase), so
that one cannot slow or break another; it waits for results with the
phase's deadline and shuts its executor down in a finally. The parent
gives the phase --timeout seconds plus a grace for the shutdown, then
kills the phase's process group.

    XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python bench/py_calls.py
    bench/py_calls.py --calls 5000 --skip-dask

Needs cloudpickle (xylem), parsl==2026.10.26 (for htex) and dask
distributed (for dask; installed with pip if missing, unless --skip-dask).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

PARSL_VERSION = "2026.10.26"
TARGETS = {"htex": 10.0, "dask": 3.0}
SHUTDOWN_GRACE = 60      # seconds past --timeout before a phase is killed


def noop(i):
    return i


def make_noop(nbytes):
    """noop, or (nbytes > 0) a no-op that closes over nbytes of data of its
    own, so that its pickle carries them: a function that takes data with
    it, which Xylem sends to each worker once (docs/python.md)."""
    if not nbytes:
        return noop
    pad = b"x" * nbytes

    def noop_with_data(i):
        return i if pad else None
    return noop_with_data


# ------------------------------------------------------------ phases
#
# Each phase prints one line "RESULT {json}" on stdout with startup (s),
# and for each timed run its seconds and calls.

def wait_all(futures, deadline, what):
    """Results of futures (concurrent.futures-like), in order, within
    deadline (a time.monotonic() value)."""
    import concurrent.futures as cf
    left = deadline - time.monotonic()
    done, pending = cf.wait(futures, timeout=max(0.0, left))
    if pending:
        raise TimeoutError(f"{what}: {len(pending)} of {len(futures)} calls "
                           f"not done at the phase's deadline")
    return [f.result() for f in futures]


def check(results, n, what):
    if results != list(range(n)):
        raise RuntimeError(f"{what}: wrong results")


def phase_xylem(a, deadline):
    import xylem
    noop = make_noop(a.fn_bytes)
    t0 = time.perf_counter()
    ex = xylem.Executor(workers=2)
    try:
        check(wait_all([ex.submit(noop, i) for i in range(a.warmup)],
                       deadline, "xylem warm-up"), a.warmup, "xylem warm-up")
        startup = time.perf_counter() - t0

        t1 = time.perf_counter()
        fs = [ex.submit(noop, i) for i in range(a.calls)]
        t_sub = time.perf_counter() - t1
        res = wait_all(fs, deadline, "xylem submit")
        t_submit = time.perf_counter() - t1
        check(res, a.calls, "xylem submit")
        del fs, res

        t2 = time.perf_counter()
        res = list(ex.map(noop, range(a.calls),
                          timeout=max(1.0, deadline - time.monotonic())))
        t_map = time.perf_counter() - t2
        check(res, a.calls, "xylem map")
    finally:
        t3 = time.perf_counter()
        ex.shutdown(wait=True, cancel_futures=True)
        t_down = time.perf_counter() - t3
    return {"startup": startup, "shutdown": t_down,
            "runs": {"submit": t_submit, "map": t_map},
            "submit_only": t_sub}


def phase_htex(a, deadline):
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    if parsl.__version__ != PARSL_VERSION:
        print(f"note: parsl {parsl.__version__}, not {PARSL_VERSION}",
              file=sys.stderr)
    noop_app = parsl.python_app(make_noop(a.fn_bytes))
    run_dir = tempfile.mkdtemp(prefix="py-calls-parsl-")
    config = Config(
        executors=[HighThroughputExecutor(
            label="htex", max_workers_per_node=2, cores_per_worker=1,
            address="127.0.0.1",
            provider=LocalProvider(init_blocks=1, min_blocks=1,
                                   max_blocks=1))],
        strategy="none", run_dir=run_dir, usage_tracking=0)

    t0 = time.perf_counter()
    dfk = parsl.load(config)
    try:
        t_load = time.perf_counter() - t0
        check(wait_all([noop_app(i) for i in range(a.warmup)],
                       deadline, "htex warm-up"), a.warmup, "htex warm-up")
        startup = time.perf_counter() - t0

        t1 = time.perf_counter()
        fs = [noop_app(i) for i in range(a.calls)]
        t_sub = time.perf_counter() - t1
        res = wait_all(fs, deadline, "htex")
        t_run = time.perf_counter() - t1
        check(res, a.calls, "htex")
    finally:
        t3 = time.perf_counter()
        dfk.cleanup()
        parsl.clear()
        t_down = time.perf_counter() - t3
        import shutil
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"startup": startup, "dfk_load": t_load, "shutdown": t_down,
            "runs": {"submit": t_run}, "submit_only": t_sub}


def phase_dask(a, deadline):
    from distributed import Client, LocalCluster
    noop = make_noop(a.fn_bytes)

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = None
    try:
        client = Client(cluster)
        client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
        fs = [client.submit(noop, i, pure=False) for i in range(a.warmup)]
        check(client.gather(fs), a.warmup, "dask warm-up")
        del fs
        startup = time.perf_counter() - t0

        t1 = time.perf_counter()
        fs = [client.submit(noop, i, pure=False) for i in range(a.calls)]
        t_sub = time.perf_counter() - t1
        from distributed import wait
        wait(fs, timeout=max(1.0, deadline - time.monotonic()))
        res = client.gather(fs)
        t_run = time.perf_counter() - t1
        check(res, a.calls, "dask")
        del fs, res
    finally:
        t3 = time.perf_counter()
        if client is not None:
            client.close()
        cluster.close()
        t_down = time.perf_counter() - t3
    return {"startup": startup, "shutdown": t_down,
            "runs": {"submit": t_run}, "submit_only": t_sub}


PHASES = {"xylem": phase_xylem, "htex": phase_htex, "dask": phase_dask}


def run_phase(a):
    deadline = time.monotonic() + a.timeout
    # The parent's SIGTERM (at its deadline) becomes an exception here, so
    # that the finally blocks shut the executor down.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
        KeyboardInterrupt("SIGTERM")))
    out = PHASES[a.phase](a, deadline)
    print("RESULT " + json.dumps(out), flush=True)


# ------------------------------------------------------------ parent

def ensure_dask():
    try:
        import distributed  # noqa: F401
        return True
    except ImportError:
        pass
    print("dask distributed is not installed; installing it with pip ...",
          flush=True)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "dask", "distributed"])
    if r.returncode == 0:
        import importlib
        importlib.invalidate_caches()
        try:
            import distributed  # noqa: F401
            return True
        except ImportError:
            pass
    print("!! could not install dask distributed (pip install dask "
          "distributed); the Dask comparison is skipped", flush=True)
    return False


def live_members(pgid, settle=2.0):
    """Processes of process group pgid that are still running (zombies,
    already exited, are not counted), after up to settle seconds."""
    end = time.monotonic() + settle
    while True:
        left = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                left.append(int(d))
        if not left or time.monotonic() >= end:
            return left
        time.sleep(0.1)


def spawn(a, phase):
    """Runs one phase in a child process (its own session, so that its
    workers can be killed with it). Returns its result dict, or None."""
    cmd = [sys.executable, os.path.abspath(__file__), "--phase", phase,
           "--calls", str(a.calls), "--warmup", str(a.warmup),
           "--timeout", str(a.timeout), "--fn-bytes", str(a.fn_bytes)]
    print(f"-- {phase}: {a.calls} calls ...", flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=a.timeout + SHUTDOWN_GRACE)
    except subprocess.TimeoutExpired:
        print(f"!! {phase}: no result after {a.timeout + SHUTDOWN_GRACE} s; "
              f"stopping it", flush=True)
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        return None
    for line in out.splitlines():
        if line.startswith("RESULT "):
            # The phase shut its executor down; say so if any process of
            # its session outlived it, and stop those.
            left = live_members(p.pid)
            if left:
                print(f"!! {phase}: {len(left)} processes left after "
                      f"shutdown; killing them", flush=True)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return json.loads(line[len("RESULT "):])
    print(f"!! {phase}: failed (exit {p.returncode})", flush=True)
    return None


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000,
                    help="no-op calls per timed run (20000)")
    ap.add_argument("--warmup", type=int, default=200,
                    help="calls before timing, counted as start-up (200)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds each phase may take, start-up included "
                         f"(300; its shutdown gets {SHUTDOWN_GRACE} more)")
    ap.add_argument("--fn-bytes", type=int, default=0,
                    help="bytes of data the no-op closes over, so that its"
                         " pickle carries them (0)")
    ap.add_argument("--skip-dask", action="store_true")
    ap.add_argument("--skip-htex", action="store_true")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.calls < 1 or a.warmup < 1 or a.fn_bytes < 0:
        ap.error("--calls and --warmup must be positive, --fn-bytes not"
                 " negative")
    if a.phase:
        run_phase(a)
        return 0

    phases = ["xylem"]
    if not a.skip_htex:
        phases.append("htex")
    if not a.skip_dask and ensure_dask():
        phases.append("dask")

    try:
        load = os.getloadavg()[0]
        print(f"load average {load:.2f} on {os.cpu_count()} cores"
              + ("  (busy: figures are noisy)" if load > 0.5 else ""),
              flush=True)
    except OSError:
        pass

    results = {ph: spawn(a, ph) for ph in phases}
    n = a.calls

    def rate(r, run="submit"):
        return n / r["runs"][run]

    data = f", the no-op carrying {a.fn_bytes} bytes" if a.fn_bytes else ""
    print(f"\nno-op Python calls: {n}, 2 workers x 1 core each "
          f"(warm-up {a.warmup} calls, counted in start-up{data})")
    rows = []
    x = results.get("xylem")
    if x:
        rows.append(("xylem.Executor submit+wait", rate(x), x, "submit"))
        rows.append(("xylem.Executor map", rate(x, "map"), x, "map"))
    if results.get("htex"):
        rows.append(("Parsl HTEX python_app", rate(results["htex"]),
                     results["htex"], "submit"))
    if results.get("dask"):
        rows.append(("Dask LocalCluster submit", rate(results["dask"]),
                     results["dask"], "submit"))
    for name, r, res, run in rows:
        total = res["startup"] + res["runs"][run]
        extra = ""
        if "dfk_load" in res:
            extra = f", parsl.load {res['dfk_load']:.2f} s"
        sub = (f", submit loop {res['submit_only']:.2f} s"
               if run == "submit" else "")
        print(f"  {name:28s} {r:9.0f} calls/s  ({res['runs'][run]:.2f} s{sub}; "
              f"start-up {res['startup']:.2f} s{extra}; with start-up "
              f"{n / total:.0f} calls/s; shutdown {res['shutdown']:.2f} s)")
    status = 0
    if not x:
        return 1
    for ph in ("htex", "dask"):
        if ph not in phases:
            continue
        if not results.get(ph):
            print(f"  Xylem/{ph.upper()}: no figure ({ph} failed)")
            status = 1
            continue
        ratio = rate(x) / rate(results[ph])
        ratio_map = rate(x, "map") / rate(results[ph])
        ok = ratio >= TARGETS[ph]
        print(f"  Xylem/{ph.upper():4s} {ratio:6.2f} (map {ratio_map:.2f}; "
              f"target >= {TARGETS[ph]:.0f}) "
              + ("ok" if ok else "BELOW TARGET"))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
