#!/usr/bin/env python3
"""A shared dataset and environment for a workflow on N hosts (DESIGN.md,
Benchmarks: "shared dataset and environment for a Parsl workflow").

Makes a namespace cluster (tests/netns/cluster.py: a manager host and
--hosts worker hosts, every link capped at --rate both ways), a random
dataset of --data-mib and a packed environment of --env-mib (a .tar.gz of
a directory holding bin/analyze and incompressible filler, so that it is
that size packed), and runs the same workflow twice in the same run:
--tasks independent tasks (a Parsl-style bag of apps), spread evenly over
the hosts, each running the environment's bin/analyze, which reads the
dataset in full (cksum, --tool) and writes one line.

  xylem     `xylem run --workers 0` on the manager host with a workflow
            file: each task has the dataset as an input (cache
            "workflow") and the environment as an "unpack" input (cache
            "worker"); one `xylem worker --cores C` on each worker host,
            C = tasks / hosts. Time: from the first dispatch (or the first
            transfer, if earlier) to the last task done, from the run's
            history database.
  baseline  the manager host is a central file server (plain HTTP,
            python http.server with sendfile); on each worker host a
            driver starts its tasks at once, and each task, as a shared
            filesystem's client would, gets the environment and then the
            dataset through a per-host cache: the first task that needs
            one fetches it (curl) under a lock, and later tasks reuse the
            host's copy; the first task to get the environment unpacks it
            once for the host. Then the task runs the same bin/analyze.
            Time: from the drivers' start to the last one's end.

Both run on the same hosts, links and data, and every task's line is
checked against the dataset's checksum computed here. Prints both times,
baseline / xylem, and the target (3x; the published figure for this
comparison is 1.48x).

    sudo bench/parsl_workflow.py            # 8 hosts, 64 tasks, ~1.5 min
    sudo bench/parsl_workflow.py --only xylem --transfers   # its chains

Why 200 Mbit/s: the baseline moves hosts x (data + env) through the
server's one link, 1.5 GiB at the defaults, 68 s; the pipelined broadcast
keeps every link busy both ways, which this 2-core machine carries at 200
Mbit/s for 8 links with little loss (bench/broadcast.py's ring column, 1.3
at N = 8), while the tasks' own reading (64 x 128 MiB through cksum, 2 s
of CPU) stays small beside the transfers.

Needs root, iproute2, curl, flock, tar, and a built xylem (env XYLEM_BIN,
else build/src/cli/xylem).
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/netns"))

import cluster                                   # noqa: E402
from cluster import MANAGER, Cluster, ClusterError  # noqa: E402
sys.path.insert(0, str(REPO / "bench"))
import nsbench                                   # noqa: E402
from nsbench import (HTTP_SERVER, add_link_args, sha256_file,  # noqa: E402
                     write_random)

HTTP_PORT = 8000
TARGET = 3.0
PUBLISHED = 1.48
TOOLS = ("cksum", "md5sum", "sha256sum", "b2sum")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=8,
                    help="worker hosts (8)")
    ap.add_argument("--tasks", type=int, default=64,
                    help="tasks, a multiple of --hosts (64)")
    ap.add_argument("--data-mib", type=int, default=128,
                    help="the dataset's size in MiB (128)")
    ap.add_argument("--env-mib", type=int, default=64,
                    help="the packed environment's size in MiB (64)")
    add_link_args(ap)
    ap.add_argument("--tool", default="cksum", choices=TOOLS,
                    help="what bin/analyze reads the dataset with (cksum)")
    ap.add_argument("--only", default="xylem,baseline",
                    help="which of xylem,baseline to run (both)")
    ap.add_argument("--transfers", action="store_true",
                    help="also list Xylem's transfers, from its history")
    a = ap.parse_args(argv)
    a.methods = [m for m in ("xylem", "baseline") if m in a.only.split(",")]
    if a.hosts < 1 or a.tasks < a.hosts or a.tasks % a.hosts:
        ap.error("--tasks must be a positive multiple of --hosts")
    if a.data_mib < 1 or a.env_mib < 1:
        ap.error("--data-mib and --env-mib must be positive")
    return a


# ------------------------------------------------------------ the inputs

ANALYZE = """#!/bin/sh
# The environment's analysis: reads the dataset ($1) in full and prints
# its checksum.
set -e
{tool} < "$1"
"""


def make_environment(work, size, tool):
    """A packed environment of about size bytes: env/bin/analyze and
    random filler (so that gzip cannot shrink it) in a .tar.gz. Returns
    the archive's path."""
    src = work / "envsrc"
    (src / "bin").mkdir(parents=True)
    (src / "lib").mkdir()
    analyze = src / "bin/analyze"
    analyze.write_text(ANALYZE.format(tool=tool))
    analyze.chmod(0o755)
    # gzip stores random data at about 100.03% of its size, and tar adds
    # a header a member: 32 KiB of slack brings the archive close to size.
    write_random(src / "lib/filler.bin", size - (32 << 10))
    tgz = work / "env.tar.gz"
    with tarfile.open(tgz, "w:gz", compresslevel=1) as t:
        t.add(src, arcname=".")
    return tgz


def expected_line(path, tool):
    """The line bin/analyze prints for the dataset, computed here."""
    with open(path, "rb") as f:
        out = subprocess.run([tool], stdin=f, capture_output=True,
                             check=True, text=True).stdout
    return out.strip()


def check_results(paths, want, what):
    """Every result file holds want; raises ClusterError naming the first
    that does not."""
    for p in paths:
        try:
            got = Path(p).read_text().strip()
        except OSError as e:
            raise ClusterError(f"{what}: {p}: {e}") from None
        if got != want:
            raise ClusterError(f"{what}: {p}: {got!r}, expected {want!r}")


# --------------------------------------------------------------- Xylem

def write_workflow(path, a, data, env, results):
    tasks = [{"id": f"t{i}",
              "command": "environment/bin/analyze data > result",
              "inputs": [{"path": str(data), "as": "data",
                          "cache": "workflow"},
                         {"path": str(env), "as": "environment",
                          "unpack": True, "cache": "worker"}],
              "outputs": [{"path": str(results / f"t{i}"),
                           "as": "result"}],
              "resources": {"cores": 1}} for i in range(a.tasks)]
    path.write_text(json.dumps({"name": "parsl-workflow", "tasks": tasks}))


def history_summary(db):
    """From the run's history: the span (first dispatch or transfer start
    to the last task done), where the tasks ran, and per object the time
    its last copy on a worker completed, relative to the span's start."""
    with sqlite3.connect(db) as con:
        ev = con.execute("SELECT event, time, worker, result FROM"
                         " task_events").fetchall()
        xf = con.execute("SELECT object, source, dest, time, seconds,"
                         " bytes, status FROM transfers").fetchall()
    disp = [t for e, t, _, _ in ev if e == "dispatched"]
    done = [(t, w, r) for e, t, w, r in ev if e == "done"]
    sub = [t for e, t, _, _ in ev if e == "submitted"]
    if not disp or not done:
        raise ClusterError(f"history has no dispatch or done: {ev[:5]}")
    bad = [r for _, _, r in done if r != 0]
    if bad:
        raise ClusterError(f"{len(bad)} tasks failed (results {set(bad)})")
    ok = [x for x in xf if x[6] == "ok" and x[2] != "manager"]
    start = min([min(disp)] + [t - s for _, _, _, t, s, _, _ in ok])
    end = max(t for t, _, _ in done)
    per_worker = {}
    for _, w, _ in done:
        per_worker[w] = per_worker.get(w, 0) + 1
    objs = {}
    for o, src, _, t, s, b, _ in ok:
        d = objs.setdefault(o, {"bytes": b, "last": 0.0, "copies": 0,
                                "from_manager": 0})
        d["last"] = max(d["last"], t - start)
        d["copies"] += 1
        d["from_manager"] += src == "manager"
    return {"span": end - start, "pre": start - min(sub) if sub else 0.0,
            "per_worker": per_worker, "objects": objs,
            "first_done": min(t for t, _, _ in done) - start,
            "failed_transfers": [x for x in xf if x[6] != "ok"],
            "transfers": sorted((t - s - start, t - start, o, src, dst, b,
                                 st) for o, src, dst, t, s, b, st in xf)}


def run_xylem(c, a, data, env, work, expect):
    """One run of the manager and a.hosts workers; returns the history
    summary, having checked every task's result."""
    run_dir = work / "xylem"
    results = run_dir / "results"
    results.mkdir(parents=True)
    write_workflow(run_dir / "wf.json", a, data, env, results)
    db = nsbench.run_xylem(c, run_dir, a.hosts, a.tasks // a.hosts, 1800)
    check_results([results / f"t{i}" for i in range(a.tasks)], expect,
                  "xylem")
    return history_summary(db)


# ------------------------------------------------------------ baseline


# One worker host of the baseline: its tasks all start at once. Each gets
# the environment, then the dataset, through the host's cache: under a
# lock per file, the first task to need it fetches it from the server
# (and unpacks the environment), later ones find it there, as a shared
# filesystem's client finds pages it has read before. The fetching task
# notes when each file became ready, for the report.
DRIVER = r"""
dir=$1 url=$2 first=$3 count=$4
cd "$dir" || exit 1
now() { date +%s.%N; }
get_env() {
	[ -d env ] && return 0
	curl -sS --fail --noproxy '*' -o env.tar.gz "$url/env.tar.gz" &&
	echo "env-fetched $(now)" >> times &&
	mkdir env.part && tar --no-same-owner -xzf env.tar.gz -C env.part &&
	mv env.part env && echo "env-ready $(now)" >> times
}
get_data() {
	[ -e data ] && return 0
	curl -sS --fail --noproxy '*' -o data.part "$url/data.bin" &&
	mv data.part data && echo "data-ready $(now)" >> times
}
task() {
	( flock 9 && get_env ) 9> env.lock || exit 1
	( flock 9 && get_data ) 9> data.lock || exit 1
	mkdir "t$1" && cd "t$1" && ../env/bin/analyze ../data > result &&
	echo "task-done $(now)" >> ../times
}
pids=
i=$first
while [ "$i" -lt $((first + count)) ]; do
	task "$i" &
	pids="$pids $!"
	i=$((i + 1))
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
exit $rc
"""


def run_baseline(c, a, data, env, work, expect):
    """Serves data and env from the manager host and runs every host's
    driver at once. Returns (seconds, per-phase times), having checked
    every task's result."""
    root = work / "baseline"
    served = root / "server"
    served.mkdir(parents=True)
    os.link(data, served / "data.bin")
    os.link(env, served / "env.tar.gz")
    driver = root / "driver.sh"
    driver.write_text(DRIVER)
    server = c.spawn(MANAGER, [sys.executable, "-u", "-c", HTTP_SERVER,
                               c.addr(MANAGER), HTTP_PORT, served],
                     name="http-server")
    server.wait_line(r"Serving HTTP", 10)
    url = f"http://{c.addr(MANAGER)}:{HTTP_PORT}"
    per = a.tasks // a.hosts
    dirs = []
    for i in range(a.hosts):
        d = root / c.worker(i)
        d.mkdir()
        dirs.append(d)
    t0 = time.time()
    procs = [c.spawn(c.worker(i), ["sh", driver, dirs[i], url, i * per,
                                   per], name=f"driver-{c.worker(i)}")
             for i in range(a.hosts)]
    for i, p in enumerate(procs):
        if p.wait(3600) != 0:
            raise ClusterError(f"driver on {c.worker(i)}: exit"
                               f" {p.returncode}:\n{p.output}")
    secs = time.time() - t0
    server.stop(2)
    check_results([dirs[i // per] / f"t{i}/result" for i in range(a.tasks)],
                  expect, "baseline")
    phases = {}
    for d in dirs:
        for line in (d / "times").read_text().split("\n"):
            if line:
                k, t = line.split()
                phases[k] = max(phases.get(k, 0.0), float(t) - t0)
    return secs, phases


# ---------------------------------------------------------------- report

def main(argv):
    a = parse_args(argv)
    reason = cluster.check_available()
    if reason:
        print(f"parsl_workflow: skipped: {reason}", file=sys.stderr)
        return 77
    if "xylem" in a.methods and not cluster.xylem_binary():
        print("parsl_workflow: no xylem binary (XYLEM_BIN or"
              " build/src/cli/xylem)", file=sys.stderr)
        return 1
    bits = cluster.rate_bits(a.rate)
    data_size, env_size = a.data_mib << 20, a.env_mib << 20
    with Cluster(a.hosts, rate=a.rate, mtu=a.mtu) as c:
        work = c.workdir / "bench"
        work.mkdir()
        data = work / "data.bin"
        write_random(data, data_size)
        env = make_environment(work, env_size, a.tool)
        expect = expected_line(data, a.tool)
        moved = data.stat().st_size + env.stat().st_size
        once = moved * 8 / bits
        print(f"parsl_workflow: {a.tasks} tasks on {a.hosts} hosts"
              f" ({a.tasks // a.hosts} a host), each running bin/analyze"
              f" ({a.tool}) from a\n{env.stat().st_size / 2**20:.1f} MiB"
              f" packed environment over a {a.data_mib} MiB dataset; every"
              f" link {a.rate} both ways, MTU {a.mtu}.\n(data + env)/bandwidth ="
              f" {once:.1f} s; one server sending it to every host:"
              f" {a.hosts * once:.1f} s.", flush=True)
        res = {}
        if "xylem" in a.methods:
            h = run_xylem(c, a, data, env, work, expect)
            res["xylem"] = h["span"]
            report_xylem(h, data, env, a.transfers)
        if "baseline" in a.methods:
            secs, phases = run_baseline(c, a, data, env, work, expect)
            res["baseline"] = secs
            print(f"baseline  {secs:7.2f} s  (last host: env fetched"
                  f" {phases.get('env-fetched', 0):.1f} s, unpacked"
                  f" {phases.get('env-ready', 0):.1f} s, data"
                  f" {phases.get('data-ready', 0):.1f} s; last task"
                  f" {phases.get('task-done', 0):.1f} s)", flush=True)
    print(f"results: all {a.tasks} tasks' checksums right in each run")
    if len(res) == 2:
        ratio = res["baseline"] / res["xylem"]
        print(f"baseline / xylem = {ratio:.2f}  (target >= {TARGET:g};"
              f" published figure {PUBLISHED})")
    return 0


def report_xylem(h, data, env, transfers):
    """Prints Xylem's time and where it went; with transfers, every
    transfer too."""
    names = {sha256_file(data): "data", sha256_file(env): "env"}
    objs = ", ".join(f"{names.get(o, o[:8])} on every host"
                     f" {d['last']:.1f} s ({d['copies']} copies,"
                     f" {d['from_manager']} from the manager)"
                     for o, d in sorted(h["objects"].items(),
                                        key=lambda kv: kv[1]["last"]))
    print(f"xylem     {h['span']:7.2f} s  ({objs}; first task done"
          f" {h['first_done']:.1f} s; tasks a host"
          f" {sorted(h['per_worker'].values())}; submit to first"
          f" dispatch {h['pre']:.1f} s, not counted)", flush=True)
    for t0, t1, o, src, dst, b, st in h["transfers"] if transfers else []:
        if dst == "manager":
            continue
        mbit = b * 8 / max(t1 - t0, 1e-6) / 1e6
        print(f"          {names.get(o, o[:8]):4} {src:>7} -> {dst:7}"
              f" {t0:6.2f} - {t1:6.2f} s  {b / 2**20:6.1f} MiB"
              f" {mbit:6.1f} Mbit/s  {st}")
    if h["failed_transfers"]:
        print(f"          {len(h['failed_transfers'])} transfers failed"
              " and were retried")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
