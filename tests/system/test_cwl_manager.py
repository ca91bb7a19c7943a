"""`xylem cwl WORKFLOW --manager ADDR` against a standing manager with a
journal (docs/cwl.md, "Workflows"; docs/durability.md, "Sessions"): the
run is a session of the manager's and each step's task a keyed SUBMIT,
so a manager killed mid-workflow and started again on its journal and
port is reached again, the unanswered steps submitted again, and the
workflow finishes with every step run once."""

import json
import subprocess
import time

from helpers import SLOW
from test_client_sessions import Standing
from test_cwl_workflow import write

TIMEOUT = 120 * SLOW


def chain(d, steps):
    """A workflow of `steps` steps in a chain; each appends its name to
    the marks file (its side effect, outside the sandbox), waits, and
    passes its input on with its name added."""
    write(d / "step.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {ShellCommandRequirement: {}}
        arguments:
          - valueFrom: >-
              echo $(inputs.name) >> $(inputs.marks);
              sleep $(inputs.pause);
              cat $(inputs.f.path) > out.txt; echo $(inputs.name) >> out.txt
            shellQuote: false
        inputs:
          f: File
          name: string
          marks: string
          pause: int
        outputs:
          o: {type: File, outputBinding: {glob: out.txt}}
        """)
    lines = ["cwlVersion: v1.2", "class: Workflow",
             "inputs: {src: File, marks: string, pause: int}",
             f"outputs: {{o: {{type: File, outputSource: s{steps}/o}}}}",
             "steps:"]
    for i in range(1, steps + 1):
        src = "src" if i == 1 else f"s{i - 1}/o"
        lines.append(f"  s{i}: {{run: step.cwl, in: {{f: {src}, name: "
                     f"{{default: s{i}}}, marks: marks, pause: pause}}, "
                     "out: [o]}")
    return write(d / "wf.cwl", "\n".join(lines) + "\n")


def wait_for(pred, what, timeout=TIMEOUT, proc=None):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, what
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: {proc.communicate()}")
        time.sleep(0.05)


def test_workflow_survives_a_manager_kill(xylem, xylem_bin, tmp_path,
                                          secret_file):
    """SIGKILL to the manager while step 2 of 4 runs, started again on
    its journal: `xylem cwl` reconnects, the running step is adopted
    from its worker (or answered from the journal), and every step ran
    exactly once."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    xylem.worker(mgr.port, secret_file, 2, "--lease", 120)
    wf = chain(tmp_path / "wf", 4)
    write(tmp_path / "in.txt", "in\n")
    marks = tmp_path / "marks"
    p = subprocess.Popen(
        [xylem_bin, "cwl", "--quiet", "--manager", f"127.0.0.1:{mgr.port}",
         "--secret-file", str(secret_file), "--outdir",
         str(tmp_path / "out"), str(wf), "--src", str(tmp_path / "in.txt"),
         "--marks", str(marks), "--pause", "2"],
        env=xylem.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        wait_for(lambda: marks.exists() and
                 "s2" in marks.read_text().split(), "step 2 never began",
                 proc=p)
        mgr.kill()
        time.sleep(1)
        mgr.start()
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err + mgr.log()[-4000:]
    assert "lost the manager" in err, err
    # Each step's side effect happened once.
    assert marks.read_text().split() == ["s1", "s2", "s3", "s4"], \
        (marks.read_text(), mgr.log()[-4000:])
    o = json.loads(out)["o"]
    assert open(o["path"]).read().split() == ["in", "s1", "s2", "s3", "s4"]
    assert "attached to its session" in mgr.log()


def test_scatter_survives_a_manager_kill(xylem, xylem_bin, tmp_path,
                                         secret_file):
    """A scatter of 8 jobs on a worker of 2 cores, the manager killed
    while the first two run and the other six wait in its queue: all
    eight unanswered tasks are submitted again, each job runs exactly
    once, and the outputs come in the scatter's order."""
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    xylem.worker(mgr.port, secret_file, 2, "--lease", 120)
    chain(tmp_path / "wf", 1)  # writes step.cwl
    wf = write(tmp_path / "wf" / "scatter.cwl", """
        cwlVersion: v1.2
        class: Workflow
        requirements: {ScatterFeatureRequirement: {}}
        inputs: {src: File, names: 'string[]', marks: string, pause: int}
        outputs:
          o: {type: 'File[]', outputSource: s/o}
        steps:
          s:
            run: step.cwl
            scatter: name
            in: {f: src, name: names, marks: marks, pause: pause}
            out: [o]
        """)
    write(tmp_path / "in.txt", "in\n")
    marks = tmp_path / "marks"
    names = [f"j{i}" for i in range(8)]
    args = [xylem_bin, "cwl", "--quiet", "--manager",
            f"127.0.0.1:{mgr.port}", "--secret-file", str(secret_file),
            "--outdir", str(tmp_path / "out"), str(wf), "--src",
            str(tmp_path / "in.txt"), "--marks", str(marks), "--pause", "2"]
    for n in names:
        args += ["--names", n]
    p = subprocess.Popen(args, env=xylem.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: marks.exists() and
                 len(marks.read_text().split()) >= 2, "no job began",
                 proc=p)
        mgr.kill()
        time.sleep(1)
        mgr.start()
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err + mgr.log()[-4000:]
    assert "lost the manager" in err, err
    assert sorted(marks.read_text().split()) == names, \
        (marks.read_text(), mgr.log()[-4000:])
    outs = json.loads(out)["o"]
    assert [open(o["path"]).read().split()[-1] for o in outs] == names


def test_intermediate_files_stay_on_the_workers(xylem, xylem_bin, tmp_path,
                                                secret_file):
    """Through a standing manager, a file one step makes and the next
    reads stays on the workers as a temp of the run's session: the step's
    out/ never comes to this side, the manager's store never holds it
    (only the workflow's output is brought back, by a task that copies
    the temp), and only that output reaches --outdir."""
    import hashlib
    import os
    mgr = Standing(xylem, secret_file, tmp_path / "journal")
    xylem.worker(mgr.port, secret_file, 2)
    write(tmp_path / "make.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "head -c 3000000 /dev/zero | tr '\\\\0' z > big.bin"]
        inputs: []
        outputs:
          big: {type: File, outputBinding: {glob: big.bin}}
        """)
    write(tmp_path / "use.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {ShellCommandRequirement: {}}
        arguments:
          - valueFrom: wc -c < $(inputs.f.path) > n.txt
            shellQuote: false
        inputs:
          f: File
        outputs:
          n: {type: File, outputBinding: {glob: n.txt}}
        """)
    wf = write(tmp_path / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        inputs: []
        outputs:
          n: {type: File, outputSource: use/n}
        steps:
          make: {run: make.cwl, in: [], out: [big]}
          use: {run: use.cwl, in: {f: make/big}, out: [n]}
        """)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(xylem.env, TMPDIR=str(tmp))
    r = subprocess.run(
        [xylem_bin, "cwl", "--quiet", "--manager", f"127.0.0.1:{mgr.port}",
         "--secret-file", str(secret_file), "--outdir",
         str(tmp_path / "out"), str(wf)], env=env, capture_output=True,
        text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr + mgr.log()[-3000:]
    assert (tmp_path / "out" / "n.txt").read_text().strip() == "3000000"
    assert sorted(os.listdir(tmp_path / "out")) == ["n.txt"]
    big = hashlib.sha256(b"z" * 3000000).hexdigest()
    store = os.listdir(tmp_path / "journal" / "store")
    assert big not in store, store
    assert store, "the workflow's output came through the store"
