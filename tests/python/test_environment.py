"""Software environments (docs/python.md, "Environments"): a venv with a
package of its own, which this interpreter does not have, packed by
xylem.Environment, sent to each worker once, unpacked once there, and
used by warm calls, fresh calls and shell functions."""

import os
import re
import shutil
import subprocess
import sys
import venv

import pytest

import xylem

from conftest import TIMEOUT

PROBE = "xyenvprobe_test_pkg"


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory):
    """A venv (symlinked interpreter, as `python3 -m venv` makes it) with
    a tiny package written into its site-packages, and cloudpickle copied
    in (a library instance needs it; the venv sees nothing of this
    interpreter's site-packages)."""
    d = tmp_path_factory.mktemp("env") / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(d)
    out = subprocess.run([str(d / "bin" / "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True,
                         check=True)
    site = out.stdout.strip()
    pkg = os.path.join(site, PROBE)
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write("MAGIC = 'from the environment'\n")
    import cloudpickle
    shutil.copytree(os.path.dirname(cloudpickle.__file__),
                    os.path.join(site, "cloudpickle"))
    return d


def _make_probe():
    # A nested function is pickled by value: the environment has no
    # pytest, so this test module cannot be imported there.
    def probe(i):
        import os
        import time
        import xyenvprobe_test_pkg
        time.sleep(0.2)
        return (xyenvprobe_test_pkg.MAGIC, os.environ.get("VIRTUAL_ENV"),
                os.path.realpath(".xylem/env"))
    return probe


probe = _make_probe()


def test_not_importable_here():
    with pytest.raises(ImportError):
        __import__(PROBE)


def test_warm_calls_on_two_workers_unpack_once_each(make_executor, env_dir,
                                                    capfd, monkeypatch):
    monkeypatch.setenv("XYLEM_LOG", "info")  # workers log each expansion
    env = xylem.Environment(env_dir)
    assert env.tarball.endswith(".tar.gz")
    ex = make_executor(workers=2, cores_per_worker=2, environment=env)
    fs = [ex.submit(probe, i) for i in range(12)]
    results = [f.result(timeout=TIMEOUT) for f in fs]
    assert {r[0] for r in results} == {"from the environment"}
    assert all(r[1] and r[1].endswith(".xylem/env") for r in results)
    # Every call ran in one of the two workers' expansions.
    roots = {r[2] for r in results}
    assert len(roots) == 2, roots
    for root in roots:
        assert re.search(r"/worker-\d/unpacked/[0-9a-f]{64}$", root), root
    for i in range(2):
        d = os.path.join(ex._tmpdir, f"worker-{i}", "unpacked")
        assert len(os.listdir(d)) == 1
    ex.shutdown()
    err = capfd.readouterr().err
    assert len(re.findall(r"unpack: unpacked [0-9a-f]{12} into", err)) == 2, \
        err[-3000:]


def test_fresh_and_shell_in_environment(make_executor, env_dir):
    env = xylem.Environment(env_dir)
    ex = make_executor(workers=1)
    r = ex.options(environment=env, fresh=True).submit(probe, 0)
    assert r.result(timeout=TIMEOUT)[0] == "from the environment"
    sh = xylem.ShellFunction(f"python -c 'import {PROBE} as p;"
                             f" print(p.MAGIC)'; echo $VIRTUAL_ENV")
    out = ex.options(environment=env).submit(sh).result(timeout=TIMEOUT)
    assert out.returncode == 0, out
    assert out.stdout.splitlines()[0] == "from the environment"
    assert out.stdout.splitlines()[1].endswith("/.xylem/env")
    # Without the environment the package is not there.
    bare = xylem.ShellFunction(f"python3 -c 'import {PROBE}'")
    assert ex.submit(bare).result(timeout=TIMEOUT).returncode != 0


def test_tarball_and_xylem_env_sh(make_executor, tmp_path):
    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    tool = root / "bin" / "hello-env-tool"
    tool.write_text("#!/bin/sh\necho tool says $GREETING\n")
    tool.chmod(0o755)
    (root / "xylem-env.sh").write_text("export GREETING=hi\n")
    tarball = tmp_path / "tree.tar.xz"
    subprocess.run(["tar", "-cJf", str(tarball), "-C", str(root), "."],
                   check=True)
    ex = make_executor(workers=1)
    sh = xylem.ShellFunction("hello-env-tool")
    out = ex.options(environment=xylem.Environment(tarball)).submit(sh)
    assert out.result(timeout=TIMEOUT).stdout == "tool says hi\n"


def test_bad_environment_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        xylem.Environment(tmp_path / "nothing")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(ValueError):
        xylem.Environment(tmp_path / "x.txt")
