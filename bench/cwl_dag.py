#!/usr/bin/env python3
"""A generated DAG of CWL steps passing files (issue 17, "Benchmarks"):
LAYERS layers of WIDTH steps; step i of layer k concatenates the files of
steps i and i+1 (mod WIDTH) of layer k-1 after a line of its own name, so
every step reads two intermediate files and file sizes double per layer;
a last step concatenates the last layer. Only that last file is an output
of the workflow: everything else is intermediate. Run with `xylem cwl`
(each step a task on the local worker, intermediates kept on it as
temps), `cwltool --parallel --no-container`, and, where it is installed,
`toil-cwl-runner` (single machine), in the same run, alternating, best of
R rounds; prints the wall and CPU times and the ratios, and checks that
every runner produced the same final file.

cwltool is looked for as $CWLTOOL, then on PATH, then in the virtual
environment bench/cwl_scatter.py installs; Toil as $TOIL_CWL_RUNNER, then
on PATH, then in the virtual environment `bench/cwl_scatter.py --toil`
makes (--toil here makes it too; --no-toil leaves Toil out). Neither is
used outside bench/.

    bench/cwl_dag.py [--layers 15] [--width 20] [--rounds 1] [--toil]
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwl_scatter import (TOP, cpu, find_cwltool, find_toil,  # noqa: E402
                         toil_cmd)

TOOL = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "$0"; cat "$@"']
inputs:
  tag: {type: string, inputBinding: {position: 1}}
  fs: {type: 'File[]', inputBinding: {position: 2}}
stdout: out.txt
outputs:
  out: stdout
"""


def workflow(layers, width):
    lines = ["cwlVersion: v1.2", "class: Workflow",
             "requirements: {MultipleInputFeatureRequirement: {}}",
             "inputs: {seed: File}",
             "outputs: {final: {type: File, outputSource: final/out}}",
             "steps:"]

    def step(name, sources):
        src = ", ".join(sources)
        lines.append(f"  {name}: {{run: cat.cwl, in: {{tag: {{default: "
                     f"{name}}}, fs: {{source: [{src}], linkMerge: "
                     f"merge_flattened}}}}, out: [out]}}")
    for i in range(width):
        step(f"s0_{i}", ["seed"])
    for k in range(1, layers):
        for i in range(width):
            step(f"s{k}_{i}", [f"s{k - 1}_{i}/out",
                               f"s{k - 1}_{(i + 1) % width}/out"])
    step("final", [f"s{layers - 1}_{i}/out" for i in range(width)])
    return "\n".join(lines) + "\n"


def timed(cmd, cwd, out):
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    t0, c0 = time.monotonic(), cpu()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    dt, dc = time.monotonic() - t0, cpu() - c0
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    files = [os.path.join(p, f) for p, _, fs in os.walk(out) for f in fs]
    if len(files) != 1:
        sys.exit(f"{cmd[0]}: {len(files)} files in its outdir, not 1")
    with open(files[0], "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return dt, dc, digest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=15)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-toil", action="store_true")
    ap.add_argument("--toil", action="store_true",
                    help="install Toil (pinned) if it is not found")
    a = ap.parse_args()
    xylem = os.environ.get("XYLEM_BIN",
                           os.path.join(TOP, "build/src/cli/xylem"))
    runners = {"xylem cwl": None, "cwltool --parallel": find_cwltool()}
    toil = None if a.no_toil else find_toil(install=a.toil)
    if toil:
        runners["toil-cwl-runner"] = toil
    d = tempfile.mkdtemp(prefix="xylem-cwl-dag-")
    steps = a.layers * a.width + 1
    try:
        with open(os.path.join(d, "cat.cwl"), "w") as f:
            f.write(TOOL)
        with open(os.path.join(d, "wf.cwl"), "w") as f:
            f.write(workflow(a.layers, a.width))
        with open(os.path.join(d, "seed.txt"), "w") as f:
            f.write("seed\n")
        with open(os.path.join(d, "job.json"), "w") as f:
            f.write('{"seed": {"class": "File", "path": "seed.txt"}}')
        out = os.path.join(d, "out")
        cmds = {
            "xylem cwl": [xylem, "cwl", "--quiet", "--outdir", out,
                          "wf.cwl", "job.json"],
            "cwltool --parallel": [runners["cwltool --parallel"],
                                   "--parallel", "--no-container",
                                   "--quiet", "--outdir", out, "wf.cwl",
                                   "job.json"],
        }
        if toil:
            cmds["toil-cwl-runner"] = toil_cmd(toil, d, out)
        best, cpus, digests = {}, {}, {}
        for _ in range(a.rounds):
            for name, cmd in cmds.items():
                shutil.rmtree(os.path.join(d, "jobstore"),
                              ignore_errors=True)
                dt, dc, h = timed(cmd, d, out)
                best[name] = min(dt, best.get(name, dt))
                cpus[name] = min(dc, cpus.get(name, dc))
                digests[name] = h
        if len(set(digests.values())) != 1:
            sys.exit(f"the runners' final files differ: {digests}")
        print(f"a DAG of {steps} steps ({a.layers} layers of {a.width},"
              f" two files into each step), {os.cpu_count()} cores,"
              f" best of {a.rounds}")
        for name in cmds:
            print(f"  {name:20s} {best[name]:7.2f} s wall"
                  f"  {cpus[name]:7.2f} s CPU")
        x = best["xylem cwl"]
        for name in cmds:
            if name != "xylem cwl":
                print(f"  ratio xylem/{name.split()[0]} = "
                      f"{x / best[name]:.3f} wall, "
                      f"{cpus['xylem cwl'] / cpus[name]:.3f} CPU")
        if not toil and not a.no_toil:
            print("  (toil-cwl-runner not found: --toil installs it)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
