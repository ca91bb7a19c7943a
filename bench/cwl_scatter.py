#!/usr/bin/env python3
"""A 500-step scatter of a trivial tool (`echo`, its stdout captured as a
File) as a CWL Workflow: `xylem cwl` (each tool run a Xylem task on the
local worker, all cores) against the reference runner, `cwltool --parallel
--no-container` (this machine has no container runtime), in the same run,
alternating, best of R rounds. Prints both wall times and the ratio; the
target is at most 0.5 (docs/cwl.md, issue: Toil took ~100 s and cwltool
--parallel ~10 s for such a scatter).

cwltool is used by this benchmark only: it is looked for as $CWLTOOL,
then on PATH, else installed once, pinned, into a virtual environment
under $TMPDIR (pip, so it needs the index).

Toil (`toil-cwl-runner`, single machine) runs too with --toil: looked
for as $TOIL_CWL_RUNNER, then on PATH, else installed once, pinned
(toil[cwl]==9.6.0), into a virtual environment under $TMPDIR; never in CI.

    bench/cwl_scatter.py [--steps 500] [--rounds 1] [--toil]
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

CWLTOOL_PIN = "cwltool==3.1.20260315121657"
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  x: {type: int, inputBinding: {position: 1}}
stdout: out.txt
outputs:
  out: stdout
"""

WF = """\
cwlVersion: v1.2
class: Workflow
requirements: {ScatterFeatureRequirement: {}}
inputs:
  xs: int[]
outputs:
  outs: {type: 'File[]', outputSource: echo/out}
steps:
  echo: {run: echo.cwl, in: {x: xs}, scatter: x, out: [out]}
"""


def find_cwltool():
    if os.environ.get("CWLTOOL"):
        return os.environ["CWLTOOL"]
    if shutil.which("cwltool"):
        return shutil.which("cwltool")
    venv = os.path.join(tempfile.gettempdir(), "xylem-bench-cwltool")
    exe = os.path.join(venv, "bin", "cwltool")
    if not os.path.exists(exe):
        print(f"installing {CWLTOOL_PIN} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                        CWLTOOL_PIN], check=True)
    return exe


TOIL_PIN = "toil[cwl]==9.6.0"


def find_toil(install=False):
    """toil-cwl-runner: $TOIL_CWL_RUNNER, then PATH, then the virtual
    environment under $TMPDIR that install=True makes (pinned; bench
    only). None if there is none."""
    if os.environ.get("TOIL_CWL_RUNNER"):
        return os.environ["TOIL_CWL_RUNNER"]
    if shutil.which("toil-cwl-runner"):
        return shutil.which("toil-cwl-runner")
    venv = os.path.join(tempfile.gettempdir(), "xylem-bench-toil")
    exe = os.path.join(venv, "bin", "toil-cwl-runner")
    if not os.path.exists(exe) and install:
        print(f"installing {TOIL_PIN} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q",
                        TOIL_PIN], check=True)
    if not os.path.exists(exe):
        return None
    # Its jobs run `_toil_worker` from its environment's bin.
    os.environ["PATH"] = os.path.dirname(exe) + os.pathsep + \
        os.environ.get("PATH", "")
    return exe


def toil_cmd(toil, d, out):
    """toil-cwl-runner on this machine alone (its single-machine batch
    system), with a job store it removes after."""
    return [toil, "--no-container", "--logLevel", "ERROR", "--outdir", out,
            "--jobStore", os.path.join(d, "jobstore"), "--clean", "always",
            "wf.cwl", "job.json"]


def cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def timed(cmd, cwd, outdir):
    """Wall seconds, CPU seconds (the run and every process it waited
    for: less noisy than wall time on a shared machine) and the number
    of files in outdir."""
    shutil.rmtree(outdir, ignore_errors=True)
    t0, c0 = time.monotonic(), cpu()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    dt, dc = time.monotonic() - t0, cpu() - c0
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    n = len([f for _, _, fs in os.walk(outdir) for f in fs])
    return dt, dc, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--toil", action="store_true",
                    help="run toil-cwl-runner too (installs it, pinned,"
                    " into $TMPDIR/xylem-bench-toil if it is not found)")
    a = ap.parse_args()
    xylem = os.environ.get("XYLEM_BIN",
                           os.path.join(TOP, "build/src/cli/xylem"))
    cwltool = find_cwltool()
    d = tempfile.mkdtemp(prefix="xylem-cwl-scatter-")
    try:
        with open(os.path.join(d, "echo.cwl"), "w") as f:
            f.write(TOOL)
        with open(os.path.join(d, "wf.cwl"), "w") as f:
            f.write(WF)
        with open(os.path.join(d, "job.json"), "w") as f:
            f.write('{"xs": [%s]}' % ", ".join(map(str, range(a.steps))))
        out = os.path.join(d, "out")
        runs = {"xylem cwl": [xylem, "cwl", "--quiet", "--outdir", out,
                              "wf.cwl", "job.json"],
                "cwltool --parallel": [cwltool, "--parallel",
                                       "--no-container", "--quiet",
                                       "--outdir", out, "wf.cwl",
                                       "job.json"]}
        toil = find_toil(install=True) if a.toil else None
        if toil:
            runs["toil-cwl-runner"] = toil_cmd(toil, d, out)
        best, cpus = {}, {}
        for _ in range(a.rounds):
            for name, cmd in runs.items():
                shutil.rmtree(os.path.join(d, "jobstore"),
                              ignore_errors=True)
                dt, dc, n = timed(cmd, d, out)
                if n != a.steps:
                    sys.exit(f"{name}: {n} output files, not {a.steps}")
                best[name] = min(dt, best.get(name, dt))
                cpus[name] = min(dc, cpus.get(name, dc))
        ver = subprocess.run([cwltool, "--version"], capture_output=True,
                             text=True).stdout.strip()
        print(f"{a.steps}-step scatter of echo, {os.cpu_count()} cores,"
              f" best of {a.rounds} (cwltool: {ver})")
        for name in runs:
            print(f"  {name:20s} {best[name]:7.2f} s wall"
                  f"  {cpus[name]:7.2f} s CPU")
        for name, target in (("cwltool --parallel", 0.5),
                             ("toil-cwl-runner", 0.1)):
            if name in runs:
                print(f"  ratio xylem/{name.split()[0]} ="
                      f" {best['xylem cwl'] / best[name]:.3f} wall (target"
                      f" <= {target}), "
                      f"{cpus['xylem cwl'] / cpus[name]:.3f} CPU")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
