"""xylem.cwl.CWLApp: a CWL CommandLineTool called from Python through
xylem.Executor, and as a Parsl app under XylemExecutor (docs/cwl.md)."""

import os
import textwrap

import pytest

from conftest import TIMEOUT
from xylem.cwl import CWLApp, CWLError

SORT = """
cwlVersion: v1.2
class: CommandLineTool
baseCommand: sort
inputs:
  src: {type: File, inputBinding: {position: 2}}
  reverse: {type: boolean, default: false, inputBinding: {prefix: -r,
            position: 1}}
stdout: sorted.txt
outputs:
  sorted: {type: stdout}
  lines: {type: int, outputBinding: {glob: sorted.txt, loadContents: true,
          outputEval: "$(self[0].contents.split('\\\\n').length - 1)"}}
requirements: {InlineJavascriptRequirement: {}}
"""


@pytest.fixture
def sort_tool(tmp_path):
    tool = tmp_path / "sort.cwl"
    tool.write_text(textwrap.dedent(SORT).lstrip())
    data = tmp_path / "data.txt"
    data.write_text("b\nc\na\n")
    return tool, data


def test_call_through_the_executor(ex, sort_tool, tmp_path):
    tool, data = sort_tool
    app = CWLApp(tool, executor=ex, outdir=tmp_path / "results")
    assert app.inputs == ["src", "reverse"] or \
        sorted(app.inputs) == ["reverse", "src"]
    futures = [app(src=str(data)), app(src=data, reverse=True)]
    plain, rev = (f.result(timeout=TIMEOUT) for f in futures)
    assert open(plain["sorted"]).read() == "a\nb\nc\n"
    assert open(rev["sorted"]).read() == "c\nb\na\n"
    assert plain["lines"] == 3
    # Each call has a directory of its own under outdir.
    assert os.path.dirname(plain["sorted"]) != os.path.dirname(rev["sorted"])
    assert plain["sorted"].startswith(str(tmp_path / "results"))


def test_relative_paths_as_a_shell_user_types_them(ex, sort_tool, tmp_path,
                                                   monkeypatch):
    # A path relative to the current directory, plain or in a File
    # object, names that file (docs/cwl.md); a missing one says so.
    tool, data = sort_tool
    monkeypatch.chdir(tmp_path)
    app = CWLApp(tool, executor=ex, outdir="results")
    plain = app(src="data.txt").result(timeout=TIMEOUT)
    obj = app(src={"class": "File", "path": "data.txt"}, reverse=True)
    assert open(plain["sorted"]).read() == "a\nb\nc\n"
    assert open(obj.result(timeout=TIMEOUT)["sorted"]).read() == "c\nb\na\n"
    with pytest.raises(CWLError, match="File not found: .*nope.txt"):
        app(src="nope.txt").result(timeout=TIMEOUT)


def test_unknown_input_is_a_type_error(ex, sort_tool):
    tool, data = sort_tool
    app = CWLApp(tool, executor=ex)
    f = app(src=str(data), colour="red")
    with pytest.raises(TypeError, match="colour"):
        f.result(timeout=TIMEOUT)


def test_failing_tool_raises_cwl_error(ex, tmp_path):
    tool = tmp_path / "fail.cwl"
    tool.write_text("cwlVersion: v1.2\nclass: CommandLineTool\n"
                    "baseCommand: [sh, -c, 'echo boom >&2; exit 3']\n"
                    "inputs: []\noutputs: []\n")
    app = CWLApp(tool, executor=ex, outdir=tmp_path)
    with pytest.raises(CWLError) as e:
        app().result(timeout=TIMEOUT)
    assert e.value.status == 1 and "boom" in e.value.stderr


def test_bad_document_fails_at_construction(tmp_path):
    tool = tmp_path / "bad.cwl"
    tool.write_text("class: CommandLineTool\ninputs: [\n")
    with pytest.raises(CWLError, match="bad.cwl"):
        CWLApp(tool)


def test_as_a_parsl_app(sort_tool, tmp_path):
    parsl = pytest.importorskip("parsl")
    from parsl import File
    from parsl.config import Config
    from xylem.parsl import XylemExecutor

    tool, data = sort_tool
    config = Config(executors=[XylemExecutor(workers=1)],
                    run_dir=str(tmp_path / "runinfo"), strategy="none")
    with parsl.load(config):
        sort = CWLApp(tool, outdir=tmp_path / "out").parsl_app()
        out = sort(src=File(str(data)), reverse=True).result(timeout=TIMEOUT)
    parsl.clear()
    assert open(out["sorted"]).read() == "c\nb\na\n"
    assert out["lines"] == 3
    assert out["sorted"].startswith(str(tmp_path / "out"))


def test_literal_file_default(ex, tmp_path):
    """A File literal (contents, no location) is written where the task
    can still stage it: the C runner's scratch is the call's own."""
    tool = tmp_path / "lit.cwl"
    tool.write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: cat
        inputs:
          f:
            type: File
            default: {class: File, basename: greeting.txt, contents: hello}
            inputBinding: {position: 1}
        stdout: out.txt
        outputs:
          out: stdout
        """).lstrip())
    app = CWLApp(tool, executor=ex, outdir=tmp_path / "o")
    out = app().result(timeout=TIMEOUT)
    assert open(out["out"]).read() == "hello"


def done_on_workers(ex):
    return sum(w["done"] for w in ex.status()["workers"])


def test_a_workflow_runs_whole_on_the_executor(ex, tmp_path):
    """A Workflow document is an app too: `xylem cwl --manager` runs it
    against the executor's own manager, each tool step a task on its
    workers, and the Future's result is the workflow's output object."""
    (tmp_path / "upper.cwl").write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [tr, a-z, A-Z]
        stdin: $(inputs.src.path)
        stdout: upper.txt
        inputs: {src: File}
        outputs: {up: stdout}
        """).lstrip())
    (tmp_path / "count.cwl").write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: CommandLineTool
        baseCommand: [wc, -c]
        stdin: $(inputs.f.path)
        stdout: count.txt
        inputs: {f: File}
        outputs: {n: stdout}
        """).lstrip())
    wf = tmp_path / "wf.cwl"
    wf.write_text(textwrap.dedent("""
        cwlVersion: v1.2
        class: Workflow
        inputs: {src: File}
        outputs:
          up: {type: File, outputSource: upper/up}
          n: {type: File, outputSource: count/n}
        steps:
          upper: {run: upper.cwl, in: {src: src}, out: [up]}
          count: {run: count.cwl, in: {f: upper/up}, out: [n]}
        """).lstrip())
    (tmp_path / "in.txt").write_text("hello\n")
    before = done_on_workers(ex)
    app = CWLApp(wf, executor=ex, outdir=tmp_path / "results")
    assert app.cls == "Workflow" and app.inputs == ["src"]
    out = app(src=tmp_path / "in.txt").result(timeout=TIMEOUT)
    assert open(out["up"]).read() == "HELLO\n"
    assert open(out["n"]).read().strip() == "6"
    assert out["n"].startswith(str(tmp_path / "results" / "cwl-"))
    # Its two tool steps were tasks of this executor's manager.
    # Its two tool steps ran on this executor's workers (the clients'
    # tasks are the manager's own: its counts of the program's tasks
    # leave them out, the workers' do not), and one more task brought
    # the two steps' out/, temps on the workers, back for the outputs
    # (docs/cwl.md: `cp -RL` of each temp, one task for them all).
    assert done_on_workers(ex) - before == 3
    # A missing input fails the Future with CWLError; a name the
    # workflow lacks with TypeError, as for a tool.
    with pytest.raises(CWLError, match="nope.txt"):
        app(src=tmp_path / "nope.txt").result(timeout=TIMEOUT)
    with pytest.raises(TypeError, match="colour"):
        app(src=tmp_path / "in.txt", colour=1).result(timeout=TIMEOUT)
    with pytest.raises(CWLError, match="no Parsl app"):
        app.parsl_app()
    # An executor without a manager here (an endpoint's) cannot run it.
    with pytest.raises(CWLError, match="runs on an executor with a manager"):
        CWLApp(wf, executor=object())(src=tmp_path / "in.txt").result(
            timeout=TIMEOUT)
