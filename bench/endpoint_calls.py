#!/usr/bin/env python3
"""No-op Python calls through a shared endpoint, against the in-process
executor, in the same run (issue 15; DESIGN.md, Benchmarks): through its
Unix socket, and through its TLS listener on loopback (a remote user's
path: TLS 1.3, a client certificate from `xylem endpoint enroll`, the
front relaying to the session server).

Needs root: it makes an account (xybench), starts `xylem endpoint` as
root, enrolls the account, and runs the client as that account. For each
of the in-process Executor(workers=1), Executor(endpoint="unix:...") and
Executor(endpoint="127.0.0.1:PORT") it measures:

  latency     submission to result of one no-op call at a time (p50, p99)
  throughput  a burst of --calls no-op calls, submitted at once, to the
              last result
  cold start  (endpoint) from Executor(endpoint=...) with no session
              server running to the first result, its local worker
              included; the in-process figure is Executor() to the first
              result; over TLS (measured last, the session server runs):
              the connection, the handshake and the first result

and prints each endpoint figure beside the in-process one, with their
ratio. Targets (issue 15): p50 at most 2 ms, 10,000 calls/s, cold start
200 ms with workers already connected (here the worker starts with it).
Globus Compute's published figures: 76 ms warm latency (funcX paper),
about 256 tasks/s per client at the service's request limit.

    sudo bench/endpoint_calls.py [--calls 10000] [--latency 2000]

Env: XYLEM_BUILD_DIR (default build/).
"""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lib"))
from accounts import world_tree  # noqa: E402
USER = "xybench"

CLIENT = """
import json, os, sys, time, statistics
import xylem

def noop():
    return None

def measure(make, n_lat, n_burst):
    t0 = time.perf_counter()
    ex = make()
    ex.submit(noop).result()
    cold = time.perf_counter() - t0
    for _ in range(200):                      # warm up
        ex.submit(noop).result()
    lat = []
    for _ in range(n_lat):
        t = time.perf_counter()
        ex.submit(noop).result()
        lat.append(time.perf_counter() - t)
    lat.sort()
    t = time.perf_counter()
    futs = [ex.submit(noop) for _ in range(n_burst)]
    for f in futs:
        f.result()
    rate = n_burst / (time.perf_counter() - t)
    ex.shutdown()
    return {"cold": cold, "p50": lat[len(lat) // 2],
            "p99": lat[int(len(lat) * 0.99)], "rate": rate}

n_lat, n_burst, sock = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
local = measure(lambda: xylem.Executor(
    workers=1, pythonpath=os.environ["PYTHONPATH"]), n_lat, n_burst)
remote = measure(lambda: xylem.Executor(endpoint="unix:" + sock), n_lat,
                 n_burst)
tls = measure(lambda: xylem.Executor(endpoint=sys.argv[4]), n_lat, n_burst)
print(json.dumps({"local": local, "endpoint": remote, "tls": tls}))
"""


def tree(build):
    d = world_tree(build, prefix="xybench-")
    (d / "client.py").write_text(textwrap.dedent(CLIENT))
    os.chmod(d / "client.py", 0o644)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--latency", type=int, default=2000)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("endpoint_calls: needs root (it makes an account)")
    build = Path(os.environ.get("XYLEM_BUILD_DIR", REPO / "build")).resolve()
    if subprocess.run(["id", USER], capture_output=True).returncode:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER],
                       check=True)
    home = pwd.getpwnam(USER).pw_dir
    shutil.rmtree(os.path.join(home, ".xylem"), ignore_errors=True)
    d = tree(build)
    python = os.path.realpath(os.path.join(sys.base_prefix, "bin",
                                           "python3"))
    # Byte-compiled, as an installed package is (pip compiles it): the
    # accounts cannot write __pycache__ in this root-owned tree, and
    # compiling the package at each interpreter start would be some
    # 30 ms of every cold start.
    subprocess.run([python, "-m", "compileall", "-q", str(d / "lib")],
                   check=True)
    (d / "ep.conf").write_text(
        "users = %s\nworkers = 1\npython = %s\nenvironment = PYTHONPATH=%s"
        "\nenvironment = XYLEM_BUILD_DIR=%s\n" % (
            USER, python, d / "lib", d / "build"))
    log = open(d / "ep.log", "w")
    exe = str(d / "build/src/cli/xylem")
    ep = subprocess.Popen([exe, "endpoint", "--socket", str(d / "ep.sock"),
                           "--listen", "127.0.0.1:0", "--state",
                           str(d / "state"), "--config", str(d / "ep.conf")],
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        while "serving" not in (d / "ep.log").read_text():
            time.sleep(0.05)
        import re
        port = re.search(r"listening on 127\.0\.0\.1:(\d+)",
                         (d / "ep.log").read_text()).group(1)
        subprocess.run(["runuser", "-u", USER, "--", exe, "endpoint",
                        "enroll", "--socket", str(d / "ep.sock")],
                       check=True, capture_output=True, cwd="/")
        r = subprocess.run(
            ["runuser", "-u", USER, "--", "env", "PYTHONPATH=%s" % (
                d / "lib"), "XYLEM_BUILD_DIR=%s" % (d / "build"), python,
             str(d / "client.py"), str(a.latency), str(a.calls),
             str(d / "ep.sock"), "127.0.0.1:" + port], capture_output=True,
            text=True, cwd="/")
        if r.returncode:
            sys.exit("endpoint_calls: the client failed:\n" + r.stderr)
        import json
        f = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        ep.terminate()
        ep.wait(10)
        subprocess.run(["pkill", "-KILL", "-u", USER], check=False)
        shutil.rmtree(d, ignore_errors=True)
    loc, rem, tls = f["local"], f["endpoint"], f["tls"]
    print("no-op Python calls, 1 worker; the endpoint (Unix socket, TLS "
          "listener on loopback)\nagainst the in-process executor, same run")
    print("  %-22s %12s %12s %8s %12s %8s" % (
        "", "in-process", "unix", "ratio", "tls", "ratio"))
    for key, name, unit, scale in (
            ("p50", "latency p50", "ms", 1e3), ("p99", "latency p99", "ms",
                                                  1e3),
            ("rate", "throughput", "calls/s", 1),
            ("cold", "first result", "ms", 1e3)):
        print("  %-22s %12.3f %12.3f %8.2f %12.3f %8.2f   %s" % (
            name, loc[key] * scale, rem[key] * scale, rem[key] / loc[key],
            tls[key] * scale, tls[key] / loc[key], unit))
    print("first result: in-process and unix from cold (a new session "
          "server); tls with\nthe session server running (connect, "
          "handshake, first call)")
    print("targets: p50 <= 2 ms, >= 10,000 calls/s, cold start <= 200 ms;"
          " Globus Compute: 76 ms, ~256 calls/s")


if __name__ == "__main__":
    main()
