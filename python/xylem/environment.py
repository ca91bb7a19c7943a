"""xylem.Environment: a packed software environment that calls and
commands run in (docs/python.md, "Environments").

An Environment is a tarball: given as one, or packed here from a
directory (a virtual environment). The executor declares it once; each
worker gets the tarball once (from the manager or a peer), unpacks it
once into its cache, and every call or command that names it runs with
it mounted in its sandbox and activated (its bin/ first on PATH,
VIRTUAL_ENV set), so that workers import nothing from a shared
filesystem.
"""

import os
import shutil
import tarfile
import tempfile
import weakref

from .files import CACHE_LEVELS

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2",
                    ".tar.xz", ".txz", ".zip")


class Environment:
    """A packed environment, from a tarball (or zip) or a directory.

    path: a virtual environment's directory (packed here into a .tar.gz,
        symbolic links kept as links), or an archive of one.
    cache: how long workers keep it: "task", "workflow" (default),
        "worker" or "forever" (kept in the worker's cache directory across
        its restarts, so a restarted worker does not fetch it again).

    The attribute ``tarball`` is the archive's path. A venv relocates as
    long as the interpreter its pyvenv.cfg names (``home``) exists at the
    same path on the workers; scripts in its bin/ other than python keep
    the path the venv was made at in their first line, so run them as
    ``python -m pip`` rather than ``pip``.
    """

    def __init__(self, path, cache="workflow"):
        path = os.path.abspath(os.fspath(path))
        if cache not in CACHE_LEVELS:
            raise ValueError(f"cache must be one of {', '.join(CACHE_LEVELS)},"
                             f" not {cache!r}")
        self.cache = cache
        self.source = path
        if os.path.isdir(path):
            self.tarball = self._pack(path)
        elif os.path.isfile(path):
            if not path.endswith(ARCHIVE_SUFFIXES):
                raise ValueError(f"{path} is neither a directory nor an"
                                 f" archive ({', '.join(ARCHIVE_SUFFIXES)})")
            self.tarball = path
        else:
            raise FileNotFoundError(f"no environment at {path}")

    def _pack(self, path):
        tmp = tempfile.mkdtemp(prefix="xylem-env-")
        weakref.finalize(self, shutil.rmtree, tmp, True)
        out = os.path.join(tmp, os.path.basename(path.rstrip("/")) +
                           ".tar.gz")
        # Level 1: most of the size gain for a fraction of the time.
        with tarfile.open(out, "w:gz", compresslevel=1) as tar:
            # Compiled bytecode goes too: the expansion is read-only, and
            # tar keeps the sources' times, so it stays valid there.
            for name in sorted(os.listdir(path)):
                tar.add(os.path.join(path, name), arcname=name)
        return out

    def __repr__(self):
        return f"xylem.Environment({self.source!r}, cache={self.cache!r})"

