"""`xylem cwl WORKFLOW JOB`: CWL Workflows and ExpressionTools, each
CommandLineTool step a Xylem task (docs/cwl.md, "Workflows"). The
conformance suite (scripts/cwl-conformance.sh) covers the language; these
tests cover what is Xylem's own: files passed between steps' tasks, what
reaches --outdir, parallel tasks for a scatter, failures, paths relative
to the job file, and a standing manager."""

import json
import os
import subprocess
import textwrap

from helpers import SLOW

TIMEOUT = 90 * SLOW


def cwl(xylem_bin, *args, cwd=None):
    return subprocess.run([xylem_bin, "cwl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def two_steps(d):
    """upper.cwl makes a file from its input, count.cwl counts its
    bytes; the workflow chains them and outputs only the count file."""
    write(d / "upper.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [tr, a-z, A-Z]
        stdin: $(inputs.src.path)
        stdout: upper.txt
        inputs:
          src: File
        outputs:
          up: {type: stdout}
        """)
    write(d / "count.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [wc, -c]
        stdin: $(inputs.f.path)
        stdout: count.txt
        inputs:
          f: File
        outputs:
          n: {type: stdout}
        """)
    return write(d / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        inputs:
          src: File
        outputs:
          n: {type: File, outputSource: count/n}
        steps:
          upper: {run: upper.cwl, in: {src: src}, out: [up]}
          count: {run: count.cwl, in: {f: upper/up}, out: [n]}
        """)


def test_files_pass_between_steps(xylem_bin, tmp_path):
    wf = two_steps(tmp_path / "wf")
    # The job names its file relative to the job file's directory, and
    # the command runs elsewhere.
    write(tmp_path / "jobs" / "data" / "in.txt", "hello\n")
    job = write(tmp_path / "jobs" / "job.yml",
                "src: {class: File, location: data/in.txt}\n")
    out = tmp_path / "out"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    r = cwl(xylem_bin, "--quiet", "--outdir", out, wf, job, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    n = json.loads(r.stdout)["n"]
    assert n["path"] == str(out / "count.txt")
    assert (out / "count.txt").read_text().strip() == "6"
    assert n["size"] == len((out / "count.txt").read_text())
    # The intermediate upper.txt is not an output: it stays behind.
    assert sorted(os.listdir(out)) == ["count.txt"]
    assert r.stderr == ""


def test_scatter_runs_its_tasks_in_parallel(xylem_bin, tmp_path):
    write(tmp_path / "stamp.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {ShellCommandRequirement: {}}
        arguments:
          - valueFrom: >-
              date +%s.%N > t; sleep 1; date +%s.%N >> t; echo $(inputs.i) >> t
            shellQuote: false
        inputs:
          i: int
        outputs:
          t: {type: File, outputBinding: {glob: t, loadContents: true}}
        """)
    wf = write(tmp_path / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        requirements: {ScatterFeatureRequirement: {}}
        inputs:
          xs: int[]
        outputs:
          ts: {type: 'File[]', outputSource: stamp/t}
        steps:
          stamp: {run: stamp.cwl, in: {i: xs}, scatter: i, out: [t]}
        """)
    job = write(tmp_path / "job.json", '{"xs": [1, 2, 3, 4]}')
    r = cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "out", wf, job)
    assert r.returncode == 0, r.stderr
    ts = json.loads(r.stdout)["ts"]
    spans = []
    for k, t in enumerate(ts):
        start, end, i = t["contents"].split()
        assert int(i) == k + 1  # in the scatter's order
        spans.append((float(start), float(end)))
    # Every tool run is its own task; the worker runs them side by side,
    # so at least two were running at the same time.
    assert any(a[0] < b[1] and b[0] < a[1]
               for x, a in enumerate(spans) for b in spans[x + 1:]), spans
    # Four files named t: each keeps its basename in --outdir.
    assert sorted(os.path.basename(t["path"]) for t in ts) == ["t"] * 4
    assert len({t["path"] for t in ts}) == 4


def test_a_failing_step_fails_the_workflow(xylem_bin, tmp_path):
    write(tmp_path / "false.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "echo broken >&2; exit 3"]
        inputs: []
        outputs: []
        """)
    wf = write(tmp_path / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        inputs: []
        outputs: []
        steps:
          bad: {run: false.cwl, in: [], out: []}
        """)
    r = cwl(xylem_bin, "--outdir", tmp_path / "out", wf)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "broken" in r.stderr and "a step failed" in r.stderr


def test_expression_tool_runs_without_a_worker(xylem_bin, tmp_path):
    tool = write(tmp_path / "e.cwl", """
        cwlVersion: v1.2
        class: ExpressionTool
        requirements: {InlineJavascriptRequirement: {}}
        inputs:
          a: int
        outputs:
          b: int
          f: File
        expression: |
          ${ return {b: inputs.a * 2,
                     f: {class: "File", basename: "made.txt",
                         contents: "x" + inputs.a}}; }
        """)
    r = cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "out", tool,
            "--a", "21")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["b"] == 42
    assert (tmp_path / "out" / "made.txt").read_text() == "x21"
    assert out["f"]["size"] == 3


def test_missing_file_in_a_workflow_job(xylem_bin, tmp_path):
    wf = two_steps(tmp_path)
    job = write(tmp_path / "job.yml", "src: {class: File, path: gone.txt}\n")
    r = cwl(xylem_bin, "--outdir", tmp_path / "out", wf, job)
    assert r.returncode == 1
    # Named as missing, at the input that names it, not as a type error.
    assert f"input 'src': File not found: {tmp_path / 'gone.txt'}" in \
        r.stderr, r.stderr


def test_workflow_on_a_standing_manager(xylem, xylem_bin, tmp_path,
                                        secret_file):
    mgr = xylem.start("manager", "--workers", 1, "--host", "127.0.0.1",
                      "--secret-file", secret_file, "--tls-dir",
                      tmp_path / "tls")
    port = int(mgr.wait_line(r"listening on port (\d+)", 30).group(1))
    wf = two_steps(tmp_path / "wf")
    write(tmp_path / "in.txt", "four\n")
    job = write(tmp_path / "job.yml", "src: {class: File, path: in.txt}\n")
    r = cwl(xylem_bin, "--quiet", "--manager", f"127.0.0.1:{port}",
            "--secret-file", secret_file, "--tls-ca",
            tmp_path / "tls" / "ca.crt", "--outdir", tmp_path / "out", wf,
            job)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n"]["path"] == str(tmp_path / "out" /
                                                     "count.txt")
    assert (tmp_path / "out" / "count.txt").read_text().strip() == "5"
    assert mgr.p.poll() is None, mgr.output


def test_intermediate_files_stay_on_the_worker(xylem_bin, tmp_path):
    """A file one step makes and the next reads is a temp: it is never
    copied back to the command's side (its t/N/out directory there never
    appears), and only the workflow's output reaches --outdir."""
    write(tmp_path / "make.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "head -c 3000000 /dev/zero > big.bin"]
        inputs: []
        outputs:
          big: {type: File, outputBinding: {glob: big.bin}}
        """)
    write(tmp_path / "use.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {ShellCommandRequirement: {}}
        arguments:
          - valueFrom: >-
              wc -c < $(inputs.f.path) > n.txt;
              touch $(inputs.flag); sleep 2
            shellQuote: false
        inputs:
          f: File
          flag: string
        outputs:
          n: {type: File, outputBinding: {glob: n.txt}}
        """)
    wf = write(tmp_path / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        inputs:
          flag: string
        outputs:
          n: {type: File, outputSource: use/n}
        steps:
          make: {run: make.cwl, in: [], out: [big]}
          use: {run: use.cwl, in: {f: make/big, flag: flag}, out: [n]}
        """)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    flag = tmp_path / "flag"
    env = dict(os.environ, TMPDIR=str(tmp))
    p = subprocess.Popen([xylem_bin, "cwl", "--quiet", "--outdir",
                          str(tmp_path / "out"), str(wf), "--flag",
                          str(flag)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        wait = 0
        while not flag.exists() and wait < TIMEOUT * 10:
            assert p.poll() is None, p.communicate()
            subprocess.run(["sleep", "0.1"])
            wait += 1
        assert flag.exists()
        runs = list(tmp.glob("xylem-cwl-*/t"))
        assert len(runs) == 1, list(tmp.rglob("*"))
        # Nothing of step 1 came back: its out/ is a temp, and its
        # result object came with the task's output.
        assert list((runs[0] / "1").iterdir()) == []
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert (tmp_path / "out" / "n.txt").read_text().strip() == "3000000"
    assert sorted(os.listdir(tmp_path / "out")) == ["n.txt"]


def test_a_result_too_large_for_the_output_is_fetched(xylem_bin, tmp_path):
    """A step's output object comes back as the last line of its task's
    output; one past what a task's output keeps (1 MiB, here 20 files of
    60 KiB read with loadContents) is fetched from its temp instead."""
    write(tmp_path / "many.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, 'for i in $(seq 10 29); do
          head -c 61440 /dev/zero | tr "\\\\0" x > $i.txt; done']
        inputs: []
        outputs:
          fs:
            type: File[]
            outputBinding: {glob: "*.txt", loadContents: true}
        """)
    wf = write(tmp_path / "wf.cwl", """
        cwlVersion: v1.2
        class: Workflow
        requirements: {InlineJavascriptRequirement: {}}
        inputs: []
        outputs:
          n: {type: int, outputSource: count/n}
        steps:
          many: {run: many.cwl, in: [], out: [fs]}
          count:
            run:
              class: ExpressionTool
              inputs: {fs: 'File[]'}
              outputs: {n: int}
              expression: >-
                $({n: inputs.fs.map(function(f) {
                  return f.contents.length; }).reduce(function(a, b) {
                  return a + b; }, 0)})
            in: {fs: many/fs}
            out: [n]
        """)
    r = cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "out", wf)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"n": 20 * 61440}
