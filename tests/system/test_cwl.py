"""`xylem cwl`: CommandLineTools run as Xylem tasks on a local worker
(docs/cwl.md). The conformance suite (scripts/cwl-conformance.sh) covers
the language; these tests cover what is Xylem's own: staging, the output
directory, exit statuses, bad documents and hostile names."""

import json
import os
import subprocess
import textwrap

from helpers import SLOW

TIMEOUT = 60 * SLOW


def cwl(xylem_bin, *args, cwd=None):
    return subprocess.run([xylem_bin, "cwl", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT)


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_file_in_file_out(xylem_bin, tmp_path):
    tool = write(tmp_path / "wc.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [wc, -l]
        inputs:
          src: {type: File, inputBinding: {position: 1}}
        stdout: count.txt
        outputs:
          count: {type: stdout}
        """)
    data = tmp_path / "in dir" / "lines #1.txt"
    data.parent.mkdir()
    data.write_text("a\nb\nc\n")
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"src": {"class": "File",
                                       "path": str(data)}}))
    out = tmp_path / "out"
    r = cwl(xylem_bin, "--quiet", f"--outdir={out}", tool, job)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    count = result["count"]
    assert count["class"] == "File"
    assert count["basename"] == "count.txt"
    assert count["path"] == str(out / "count.txt")
    assert count["location"].startswith("file://")
    text = (out / "count.txt").read_text()
    # The tool saw the staged copy under its own basename.
    assert text.split()[0] == "3" and text.strip().endswith("lines #1.txt")
    assert count["size"] == len(text)
    assert count["checksum"].startswith("sha1$")
    # Nothing but the outputs lands in --outdir.
    assert sorted(os.listdir(out)) == ["count.txt"]


def test_secondary_files_stay_beside_their_primary(xylem_bin, tmp_path):
    tool = write(tmp_path / "ls.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {ShellCommandRequirement: {}}
        arguments:
          - {valueFrom: 'ls $(inputs.bam.dirname) > listing.txt',
             shellQuote: false}
        inputs:
          bam: {type: File, secondaryFiles: [.bai]}
        outputs:
          listing: {type: File, outputBinding: {glob: listing.txt}}
        """)
    (tmp_path / "x.bam").write_text("bam")
    (tmp_path / "x.bam.bai").write_text("index")
    job = tmp_path / "job.yml"
    job.write_text("bam: {class: File, path: x.bam}\n")
    r = cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "o", tool, job)
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)["listing"]["path"]
    assert open(listing).read().split() == ["x.bam", "x.bam.bai"]


def test_failing_tool_exits_permanent_fail(xylem_bin, tmp_path):
    tool = write(tmp_path / "false.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: ["false"]
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, "--outdir", tmp_path / "o", tool)
    assert r.returncode == 1
    assert r.stdout == ""


def test_temporary_fail_code(xylem_bin, tmp_path):
    tool = write(tmp_path / "t.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, "exit 7"]
        temporaryFailCodes: [7]
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, "--outdir", tmp_path / "o", tool)
    assert r.returncode == 75, r.stderr


def test_unsupported_requirement_exits_33(xylem_bin, tmp_path):
    tool = write(tmp_path / "d.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements:
          DockerRequirement: {dockerPull: "debian:stable"}
        baseCommand: ["true"]
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, "--outdir", tmp_path / "o", tool)
    assert r.returncode == 33, r.stderr


def test_invalid_yaml_names_file_and_line(xylem_bin, tmp_path):
    tool = tmp_path / "bad.cwl"
    tool.write_text("cwlVersion: v1.2\nclass: CommandLineTool\n"
                    "inputs: [\n  x: {type: string\n")
    r = cwl(xylem_bin, tool)
    assert r.returncode not in (0, 33)
    assert "bad.cwl:" in r.stderr


def test_unknown_type_is_reported(xylem_bin, tmp_path):
    tool = write(tmp_path / "t.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: ["true"]
        inputs:
          x: {type: strnig}
        outputs: []
        """)
    r = cwl(xylem_bin, tool)
    assert r.returncode not in (0, 33)
    assert "t.cwl" in r.stderr and "strnig" in r.stderr


def test_missing_input_file_is_reported(xylem_bin, tmp_path):
    tool = write(tmp_path / "cat.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [cat]
        inputs:
          f: {type: File, inputBinding: {position: 1}}
        outputs: []
        """)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"f": {"class": "File",
                                     "path": "no/such/file"}}))
    r = cwl(xylem_bin, tool, job)
    assert r.returncode == 1
    assert "no/such/file" in r.stderr


def test_missing_required_input_is_reported(xylem_bin, tmp_path):
    tool = write(tmp_path / "echo.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [echo]
        inputs:
          word: {type: string, inputBinding: {position: 1}}
        outputs: []
        """)
    r = cwl(xylem_bin, tool)
    assert r.returncode == 1
    assert "word" in r.stderr


def test_help_and_usage(xylem_bin):
    r = subprocess.run([xylem_bin, "cwl", "--help"], capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert r.returncode == 0 and "--outdir" in r.stdout
    r = subprocess.run([xylem_bin, "cwl"], capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.returncode == 2 and "usage" in r.stderr
    assert "no tool given" in r.stderr


ARGS_TOOL = """
    cwlVersion: v1.2
    class: CommandLineTool
    baseCommand: [sh, -c, 'printf "%s\\n" "$*" >said.txt; cat "$0" >>said.txt']
    inputs:
      src: {type: File, inputBinding: {position: 0}}
      n: {type: int, default: 1, inputBinding: {position: 1, prefix: -n}}
      loud: {type: boolean, default: false,
             inputBinding: {position: 2, prefix: --loud}}
      words: {type: 'string[]', default: [], inputBinding: {position: 3}}
      outdir: {type: string, default: none, inputBinding: {position: 4}}
    outputs:
      said: {type: File, outputBinding: {glob: said.txt}}
    """


def test_inputs_as_options_after_the_tool(xylem_bin, tmp_path):
    # As the reference runner reads them: typed by the tool, paths
    # relative to the current directory, over a job file's values; the
    # run's own options may follow the tool too.
    tool = write(tmp_path / "args.cwl", ARGS_TOOL)
    (tmp_path / "data.txt").write_text("DATA\n")
    (tmp_path / "job.yml").write_text("n: 5\nsrc: {class: File, path: "
                                      "data.txt}\n")
    r = cwl(xylem_bin, tool, "--outdir", "o1", "--src", "data.txt",
            "--n=7", "--loud", "--words", "a", "--words", "b c",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = (tmp_path / "o1" / "said.txt").read_text().splitlines()
    assert said == ["-n 7 --loud a b c none", "DATA"]
    r = cwl(xylem_bin, tool, "job.yml", "--outdir", "o2", "--", "--outdir",
            "mine", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = (tmp_path / "o2" / "said.txt").read_text().splitlines()
    assert said == ["-n 5 mine", "DATA"]
    for args, why in [
            (["--srx", "data.txt"], "no input --srx (did you mean --src?)"),
            (["--src", "data.txt", "--n", "two"], "'two' is not of type int"),
            (["--src"], "--src wants a value"),
            (["--src", "nope.txt"], "nope.txt")]:
        r = cwl(xylem_bin, tool, *args, cwd=tmp_path)
        assert r.returncode == 1 and why in r.stderr, (args, r.stderr)
    r = cwl(xylem_bin, tool, "job.yml", "other.yml", cwd=tmp_path)
    assert r.returncode == 2 and "a second job file" in r.stderr


def test_unknown_field_is_refused_with_a_hint(xylem_bin, tmp_path):
    tool = write(tmp_path / "typo.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseComand: echo
        inputs: []
        outputs: []
        """)
    r = cwl(xylem_bin, tool)
    assert r.returncode == 1
    assert "typo.cwl:3: unknown field 'baseComand' (did you mean " \
        "'baseCommand'?)" in r.stderr


PY_TOOL = """
    cwlVersion: v1.2
    class: CommandLineTool
    $namespaces: {{xylem: "https://xylem.dev/cwl#"}}
    requirements:
      xylem:InlinePythonRequirement:
        expressionLib: ["def twice(x):\\n    return 2 * x\\n"]
    inputs:
      n: {{type: int, default: 21}}
    baseCommand: echo
    arguments: [{arg}]
    stdout: out.txt
    outputs:
      out: {{type: string, outputBinding: {{glob: out.txt, loadContents: true,
             outputEval: '$(self[0].contents.strip())'}}}}
    """


def run_py(xylem_bin, tmp_path, arg):
    tool = write(tmp_path / "py.cwl", PY_TOOL.format(arg=json.dumps(arg)))
    return cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "o", tool)


def test_inline_python_expressions(xylem_bin, tmp_path):
    r = run_py(xylem_bin, tmp_path, "$(twice(inputs.n))")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["out"] == "42"
    r = run_py(xylem_bin, tmp_path,
               "${\n  s = 0\n  for i in range(inputs.n):\n"
               "      s += i\n  return s\n}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["out"] == str(sum(range(21)))


def test_inline_python_is_sandboxed(xylem_bin, tmp_path):
    marker = tmp_path / "escaped"
    for arg, why in [
            (f"$(__import__('os').system('touch {marker}'))", "_"),
            ("$(().__class__.__base__)", "_"),
            ("$(open('/etc/hostname').read())", "NameError"),
            ("${\n  import os\n  return os.getcwd()\n}", "import"),
            ("$(eval('1+1'))", "NameError"),
            (f"$(path.os.system('touch {marker}'))", "AttributeError"),
            ("$('{0.__class__}'.format(1))", "not allowed"),
            ("$(format(1, 'x'))", "not allowed"),
            ("${\n  g = (x for x in [1])\n"
             "  return str(g.gi_frame.f_back)\n}", "not allowed"),
            ("$(json.codecs)", "AttributeError")]:
        r = run_py(xylem_bin, tmp_path, arg)
        assert r.returncode == 1, (arg, r.stdout)
        assert why in r.stderr, (arg, r.stderr)
        assert "Python expression" in r.stderr, (arg, r.stderr)
    assert not marker.exists()


def test_runaway_javascript_is_stopped(xylem_bin, tmp_path):
    tool = write(tmp_path / "loop.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        requirements: {InlineJavascriptRequirement: {}}
        baseCommand: echo
        inputs: []
        arguments: ['${ while (true) {} }']
        outputs: []
        """)
    env = dict(os.environ, XYLEM_CWL_JS_TIMEOUT="2")
    r = subprocess.run([xylem_bin, "cwl", "--outdir", str(tmp_path / "o"),
                        str(tool)], capture_output=True, text=True,
                       timeout=TIMEOUT, env=env)
    assert r.returncode == 1, r.stderr
    assert "ran past 2 s" in r.stderr


def test_deliver_moves_outputs_and_refuses_escapes(xylem_bin, tmp_path):
    """--deliver DIR (what CWLApp calls once a task's outputs are back):
    the files the result names move from DIR/out to --outdir and the
    object is printed with their new paths; a result that names a path
    leading out of the output directory is refused, and nothing moves."""
    tool = write(tmp_path / "t.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: "true"
        inputs: []
        outputs: []
        """)
    back = tmp_path / "back"
    (back / "out").mkdir(parents=True)
    (back / "out" / "a.txt").write_text("hi\n")
    (back / "cwl-result.json").write_text(json.dumps(
        {"a": {"class": "File", "path": "a.txt"}}))
    dst = tmp_path / "dst"
    r = cwl(xylem_bin, "--deliver", back, "--outdir", dst, tool)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["a"]["path"] == str(dst / "a.txt")
    assert (dst / "a.txt").read_text() == "hi\n"
    (back / "out" / "b.txt").write_text("no\n")
    (back / "cwl-result.json").write_text(json.dumps(
        {"b": {"class": "File", "path": "../out/b.txt"}}))
    r = cwl(xylem_bin, "--deliver", back, "--outdir", dst / "sub", tool)
    assert r.returncode == 1, r.stdout
    assert ".." in r.stderr, r.stderr
    assert (back / "out" / "b.txt").exists()
    assert not (dst / "out").exists()


def test_task_runs_the_small_exec_beside_the_worker(xylem_bin, tmp_path):
    """The task runs xylem-cwl-exec when it sits beside the worker's
    program, else the worker's own `xylem cwl-exec`: the tool's parent
    process says which."""
    tool = write(tmp_path / "parent.cwl", """
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [sh, -c, 'cat /proc/$PPID/comm']
        inputs: []
        stdout: parent.txt
        outputs:
          parent: {type: stdout}
        """)
    helper = os.path.join(os.path.dirname(xylem_bin), "xylem-cwl-exec")
    assert os.access(helper, os.X_OK)
    r = cwl(xylem_bin, "--quiet", "--outdir", tmp_path / "a", tool)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "parent.txt").read_text().strip() == \
        "xylem-cwl-exec"[:15]
    alone = tmp_path / "bin" / "xylem"
    alone.parent.mkdir()
    alone.write_bytes(open(xylem_bin, "rb").read())
    alone.chmod(0o755)
    r = cwl(alone, "--quiet", "--outdir", tmp_path / "b", tool)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "parent.txt").read_text().strip() == "xylem"
