"""An unmodified Parsl program whose executor line is
xylem.parsl.XylemExecutor(provider=SlurmProvider(...)): Parsl's own
SlurmProvider submits the jobs, against the real test cluster, and
Xylem's scaler decides how many (docs/scaling.md, "Parsl's providers").
The program runs in a process of its own, with the cluster's SLURM_CONF,
as a user's would."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cluster
from helpers import SLOW

REPO = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent('''
    import json, os, sys, time
    import parsl
    from parsl import python_app
    from parsl.config import Config
    from parsl.providers import SlurmProvider
    from xylem.parsl import XylemExecutor

    @python_app
    def where(s, parsl_resource_specification={}):
        import os, time
        time.sleep(s)
        return os.environ.get("SLURM_JOB_ID"), os.getpid()

    provider = SlurmProvider(partition="cpu", nodes_per_block=1,
                             cores_per_node=8, init_blocks=0, min_blocks=0,
                             max_blocks=4, walltime="00:05:00",
                             cmd_timeout=30)
    ex = XylemExecutor(label="slurm_cpu", provider=provider,
                       cores_per_worker=8, idle_timeout=2,
                       address="127.0.0.1",
                       worker_command=os.environ["XYLEM_WORKER_BIN"])
    # Parsl's strategy is named, as a Parsl user's config would: Xylem's
    # scaler, not this, sizes the executor's jobs.
    config = Config(executors=[ex], run_dir=sys.argv[1],
                    strategy="htex_auto_scale", strategy_period=0.5)
    out = {}
    with parsl.load(config):
        t0 = time.monotonic()
        # 20 one-core tasks of 2 s on 8-core workers: 3 jobs are enough.
        futures = [where(2) for _ in range(20)]
        results = [f.result(timeout=120) for f in futures]
        out["seconds"] = time.monotonic() - t0
        out["jobs"] = sorted({j for j, _ in results if j})
        out["untracked"] = sum(1 for j, _ in results if not j)
        pool = ex._xy.status()["pools"][0]
        out["submitted"] = pool["submitted"]
        out["job_ids"] = [j["id"] for j in pool["jobs"]]
        out["blocks"] = len(ex.blocks_to_job_id)
        # Idle: the workers go, and their jobs end.
        deadline = time.monotonic() + 30
        while ex._xy.stats()["workers_connected"] and \\
                time.monotonic() < deadline:
            time.sleep(0.2)
        out["connected_after_idle"] = ex._xy.stats()["workers_connected"]
    print("RESULT " + json.dumps(out))
''')


def test_parsl_slurm_provider_scaled_by_xylem(slurm_clean, xylem_bin,
                                             tmp_path):
    prog = tmp_path / "program.py"
    prog.write_text(PROGRAM)
    # The extension from the plain build (a sanitized one needs its
    # runtime preloaded into python); the workers are xylem_bin, which
    # may be the sanitized build's.
    build = os.environ.get("XYLEM_BUILD_DIR", str(REPO / "build"))
    env = dict(os.environ, SLURM_CONF=slurm_clean.env["SLURM_CONF"],
               XYLEM_BUILD_DIR=build, PYTHONPATH=str(REPO / "python"),
               XYLEM_WORKER_BIN=xylem_bin)
    p = subprocess.run([sys.executable, str(prog), str(tmp_path / "run")],
                       env=env, capture_output=True, text=True,
                       timeout=180 * SLOW, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, p.stdout[-3000:] + p.stderr[-3000:]
    out = json.loads(line[0][7:])
    # Every task ran inside a Slurm job; the scaler asked for what 20
    # one-core tasks need on 8-core workers (3), not for max_blocks (4),
    # and Parsl's own blocks were never used.
    assert out["untracked"] == 0, out
    assert out["submitted"] == 3, out
    assert 1 <= len(out["jobs"]) <= 3, out
    assert out["blocks"] == 0, out
    assert out["connected_after_idle"] == 0, out
    # Submitted by Parsl's SlurmProvider (its script, in the run
    # directory), ended, and none left queued once the program is over.
    scripts = [f for f in (tmp_path / "run").glob("*/submit_scripts/xy-*")
               if not f.suffix.startswith((".std"))]
    assert len(scripts) == 3, scripts
    assert all("#SBATCH --partition=cpu" in f.read_text() for f in scripts)
    assert cluster.wait_until(
        lambda: not slurm_clean.run("squeue", "-h", check=False).strip(),
        10 * SLOW, 0.2), slurm_clean.run("squeue", check=False)
    ended = {j["JobId"] for j in slurm_clean.jobcomp()}
    assert set(out["job_ids"]) <= ended, (out, ended)
