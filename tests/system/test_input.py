"""Bad input is refused before anything runs, with a message that names
what is wrong; every command has --help; usage errors exit 2."""

import json

import pytest

from helpers import task, write_workflow


def test_hostile_sandbox_name(xylem, tmp_path):
    marker = tmp_path / "ran"
    tasks = [
        task("harmless", f"touch {marker}"),
        task("sort1", "cat x", inputs=[(tmp_path / "in", "../etc/passwd")]),
    ]
    (tmp_path / "in").write_text("x\n")
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "1", timeout=30)
    assert r.returncode == 2, r.output
    assert 'task "sort1"' in r.output
    assert '"../etc/passwd"' in r.output
    assert "refused" in r.output
    assert not marker.exists(), "a task ran although the workflow is invalid"


@pytest.mark.parametrize("name", ["/abs", "a/../b", ".."])
def test_hostile_output_names(xylem, tmp_path, name):
    wf = write_workflow(tmp_path / "wf.json", [
        task("w", "true", outputs=[(tmp_path / "o", name)])])
    r = xylem.run("run", wf, timeout=30)
    assert r.returncode == 2, r.output
    assert f'"{name}"' in r.output and 'task "w"' in r.output


@pytest.mark.parametrize("cmd", ["run", "status", "worker", "version", "help"])
def test_help_on_every_command(xylem, cmd):
    r = xylem.run(cmd, "--help", timeout=10)
    assert r.returncode == 0, r.output
    assert "usage" in r.output.lower()
    r2 = xylem.run("help", cmd, timeout=10)
    assert r2.returncode == 0, r2.output
    assert "usage" in r2.output.lower()


def test_top_level_help_and_version(xylem):
    r = xylem.run("--help", timeout=10)
    assert r.returncode == 0
    for cmd in ["run", "status", "worker", "version"]:
        assert cmd in r.output
    r = xylem.run("version", timeout=10)
    assert r.returncode == 0
    assert r.output.startswith("xylem 0.")


def test_unknown_command(xylem):
    r = xylem.run("frobnicate", timeout=10)
    assert r.returncode == 2
    assert "frobnicate" in r.output and "usage" in r.output
    r = xylem.run(timeout=10)
    assert r.returncode == 2 and "usage" in r.output


def test_malformed_json(xylem, tmp_path):
    wf = tmp_path / "bad.json"
    wf.write_text('{"tasks": [\n  {"id": "a", "command": "true"},\n'
                  '  {"id": "b" "command": "true"}\n]}\n')
    r = xylem.run("run", wf, timeout=30)
    assert r.returncode == 2, r.output
    assert "bad.json" in r.output
    assert "line 3" in r.output and "column" in r.output


def test_unknown_key(xylem, tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"tasks": [{"id": "a", "comand": "true"}]}))
    r = xylem.run("run", wf, timeout=30)
    assert r.returncode == 2, r.output
    assert '"comand"' in r.output and '"command"' in r.output


def test_missing_workflow_file(xylem, tmp_path):
    r = xylem.run("run", tmp_path / "nope.json", timeout=30)
    assert r.returncode == 2
    assert "nope.json" in r.output


@pytest.mark.parametrize("args", [["--workers", "abc"], ["--port", "70000"],
                                  ["--bogus"], []])
def test_bad_run_arguments(xylem, tmp_path, args):
    wf = write_workflow(tmp_path / "wf.json", [task("a", "true")])
    r = xylem.run("run", *([wf] if args else []), *args, timeout=30)
    assert r.returncode == 2, r.output


def test_task_larger_than_local_workers(xylem, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", [
        task("big", "true", resources={"cores": 64})])
    r = xylem.run("run", wf, "--workers", "2", "--cores-per-worker", "1",
                  timeout=30)
    assert r.returncode == 2, r.output
    assert 'task "big"' in r.output and "64 cores" in r.output
