"""Real local accounts for the tests and benchmarks that need several
users (the shared endpoint), and a tree of what those accounts can run.

local_accounts(names): makes each account that does not exist (useradd
-m), yields {name: passwd entry}, and at the end kills their processes
and removes the accounts it made, with their homes.

world_tree(build, exe): a 0755 directory every account can enter, with
lib/ (this package and cloudpickle, for PYTHONPATH) and build/ (the
extension and the program, laid out as a build directory, for
XYLEM_BUILD_DIR); the checkout itself may sit under root's 0700 home.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def kill_user(name):
    subprocess.run(["pkill", "-KILL", "-u", name], check=False)


@contextlib.contextmanager
def local_accounts(names):
    made = []
    try:
        for u in names:
            if subprocess.run(["id", u], capture_output=True).returncode:
                subprocess.run(["useradd", "-m", "-s", "/bin/bash", u],
                               check=True)
                made.append(u)
        yield {u: pwd.getpwnam(u) for u in names}
    finally:
        for u in names:
            kill_user(u)
        time.sleep(0.2)
        for u in made:
            subprocess.run(["userdel", "-r", u], capture_output=True)


def world_tree(build, exe=None, prefix="xylem-tree-"):
    import cloudpickle
    d = Path(tempfile.mkdtemp(prefix=prefix))
    build = Path(build).resolve()
    shutil.copytree(REPO / "python" / "xylem", d / "lib" / "xylem",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    shutil.copytree(os.path.dirname(cloudpickle.__file__),
                    d / "lib" / "cloudpickle",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (d / "build" / "python").mkdir(parents=True)
    for so in glob.glob(str(build / "python" / "_core*.so")):
        shutil.copy(so, d / "build" / "python")
    (d / "build" / "src" / "cli").mkdir(parents=True)
    shutil.copy(exe or build / "src" / "cli" / "xylem",
                d / "build" / "src" / "cli" / "xylem")
    for root, _, files in os.walk(d):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o755)
    return d
