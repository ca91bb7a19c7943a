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


def test_threads_at_once_declare_one_library(make_executor, env_dir):
    # Threads that submit their first calls in an environment at once
    # share one library: one declaration (library names are numbered from
    # one counter).
    import concurrent.futures as cf
    import threading
    from xylem import executor
    ex = make_executor(workers=1)
    env = xylem.Environment(env_dir)
    before = next(executor._library_numbers)
    start = threading.Barrier(8)

    def first_call(i):
        start.wait(TIMEOUT)
        return ex.options(environment=env).submit(probe, i).result(TIMEOUT)

    with cf.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(first_call, range(8)))
    assert all(r[0] == "from the environment" for r in results)
    assert next(executor._library_numbers) == before + 2


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


LEAK = "xyleak_test_pkg"

# A program that submits from a site-packages directory holding xylem and
# another package, LEAK, as an installed xylem is: a call in the
# environment must not import LEAK, nor pytest (in this side's venv).
ISOLATION_PROGRAM = """
import sys
import xylem

def probe():
    import importlib, os
    out = {}
    for name in ("%(probe)s", "%(leak)s", "pytest", "pyfuncs"):
        try:
            m = importlib.import_module(name)
            out[name] = os.path.realpath(m.__file__)
        except ModuleNotFoundError as e:
            out[name] = "missing: %%s" %% e
    return out

with xylem.Executor(workers=1, environment=xylem.Environment(sys.argv[1]),
                    **eval(sys.argv[2])) as ex:
    print(repr(ex.submit(probe).result(timeout=%(timeout)d)))
""" % {"probe": PROBE, "leak": LEAK, "timeout": TIMEOUT}


def _installed_layout(tmp_path):
    """A site-packages directory holding xylem (a link to this package)
    and LEAK."""
    site = tmp_path / "lib" / "site-packages"
    (site / LEAK).mkdir(parents=True)
    (site / LEAK / "__init__.py").write_text("")
    os.symlink(os.path.dirname(xylem.__file__), site / "xylem")
    return site


def _run_isolation(tmp_path, env_dir, options):
    site = _installed_layout(tmp_path)
    # The program's own directory has a package of the environment's
    # package's name, which must not shadow it there.
    mine = tmp_path / "mine"
    (mine / PROBE).mkdir(parents=True)
    (mine / PROBE / "__init__.py").write_text("")
    src = tmp_path / "prog.py"
    src.write_text(ISOLATION_PROGRAM)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(site), str(mine), here]))
    out = subprocess.run([sys.executable, str(src), str(env_dir),
                          repr(options)], env=env, capture_output=True,
                         text=True, timeout=TIMEOUT * 2)
    assert out.returncode == 0, out.stderr[-3000:]
    return site, eval(out.stdout.strip().splitlines()[-1])


def test_environment_does_not_see_the_submitting_sides_packages(tmp_path,
                                                                env_dir):
    site, got = _run_isolation(tmp_path, env_dir, {})
    # The environment's own package comes from its expansion ...
    assert "/unpacked/" in got[PROBE], got
    # ... and nothing comes from the site-packages that holds xylem, or
    # from this interpreter's.
    assert got[LEAK].startswith("missing:"), got
    assert got["pytest"].startswith("missing:"), got
    # The program's own modules (its PYTHONPATH) are still there.
    assert got["pyfuncs"].endswith("pyfuncs.py"), got


def test_environment_with_an_explicit_pythonpath(tmp_path, env_dir):
    site = tmp_path / "lib" / "site-packages"
    _, got = _run_isolation(tmp_path, env_dir, {"pythonpath": str(site)})
    assert got[LEAK] == os.path.realpath(site / LEAK / "__init__.py"), got
    assert "/unpacked/" in got[PROBE], got
