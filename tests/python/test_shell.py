"""ShellFunction: a command template run as a command task in a sandbox."""

import shlex
import time

import pytest

import xylem
from conftest import TIMEOUT


def test_exit_code_and_tails(ex):
    sf = xylem.ShellFunction("echo out {word}; echo err {n} >&2; exit {n}")
    r = ex.submit(sf, word="hello", n=3).result(TIMEOUT)
    assert r == xylem.ShellResult(3, "out hello\n", "err 3\n")
    assert ex.submit(sf, word="x", n=0).result(TIMEOUT).returncode == 0


def test_positional_arguments_and_quoting(ex):
    sf = xylem.ShellFunction("printf '%s|' {} {}")
    r = ex.submit(sf, "a", shlex.quote("b c")).result(TIMEOUT)
    assert r.stdout == "a|b c|"


def test_tails_keep_the_end(ex):
    sf = xylem.ShellFunction("seq 1 100000; seq 1 5000 >&2", tail=100)
    r = ex.submit(sf).result(TIMEOUT)
    assert r.returncode == 0
    assert len(r.stdout) == 100 and r.stdout.endswith("99999\n100000\n")
    assert r.stderr.endswith("4999\n5000\n")


def test_walltime_gives_124(ex):
    sf = xylem.ShellFunction("echo started; sleep 30", walltime=1)
    t = time.monotonic()
    r = ex.submit(sf).result(TIMEOUT)
    assert r.returncode == 124
    assert r.stdout == "started\n"
    assert time.monotonic() - t < 10


def test_inputs_and_outputs(ex, tmp_path):
    src = tmp_path / "words.txt"
    src.write_text("b\na\nc\n")
    out = tmp_path / "sorted.txt"
    sf = xylem.ShellFunction("sort {src} > {dst}")
    f = ex.options(inputs=[xylem.File(src)],
                   outputs=[xylem.File(out, name="s.txt")]).submit(
        sf, src="words.txt", dst="s.txt")
    assert f.result(TIMEOUT).returncode == 0
    assert out.read_text() == "a\nb\nc\n"


def test_runs_in_a_sandbox(ex, tmp_path):
    sf = xylem.ShellFunction("pwd; ls -A")
    r = ex.submit(sf).result(TIMEOUT)
    assert r.stdout.split("\n")[0] != str(tmp_path)


def test_bad_template_fails_the_future(ex):
    f = ex.submit(xylem.ShellFunction("echo {missing}"))
    with pytest.raises(KeyError):
        f.result(TIMEOUT)


def test_called_locally(tmp_path):
    sf = xylem.ShellFunction("echo {}; sleep 5", walltime=0.5)
    r = sf("local")
    assert r.returncode == 124 and r.stdout == "local\n"
