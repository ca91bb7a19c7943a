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
