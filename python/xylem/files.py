"""xylem.File: a file on the manager's side that a call or a command
reads or writes, and xylem.Temp: a file that stays on the workers
(docs/python.md, "Options").

An input is staged to the worker (cached there by content) and appears in
the task's sandbox under its ``name``; an output is the sandbox file of
that name, brought back to ``path`` when the task ends (a File) or left in
the worker's cache for later calls (a Temp).
"""

import os

CACHE_LEVELS = ("task", "workflow", "worker", "forever")


class File:
    """A local file, by path, mounted in the sandbox as ``name`` (default:
    the path's last component). ``cache`` says how long workers keep it:
    "task", "workflow" (the default: until the executor shuts down),
    "worker" or "forever" (kept in the worker's cache directory).

    As an input, the executor declares a path once and keeps it declared
    (for every call that names it) until ``Executor.release`` or shutdown;
    with ``per_call=True`` it declares it for each call that names it
    instead, and lets it go with that call, for a file that one call alone
    reads. Outputs are always declared per call (docs/python.md,
    "Files")."""

    __slots__ = ("path", "name", "cache", "per_call")

    def __init__(self, path, name=None, cache="workflow", per_call=False):
        self.per_call = bool(per_call)
        self.path = os.path.abspath(os.fspath(path))
        self.name = name if name is not None else os.path.basename(self.path)
        if not self.name:
            raise ValueError(f"File({path!r}) needs a name in the sandbox")
        if cache not in CACHE_LEVELS:
            raise ValueError(f"cache must be one of {', '.join(CACHE_LEVELS)},"
                             f" not {cache!r}")
        self.cache = cache

    @classmethod
    def of(cls, f):
        """A File from a File, a path string or an os.PathLike; a Temp
        as it is."""
        return f if isinstance(f, (File, Temp)) else cls(f)

    def __repr__(self):
        once = ", per_call=True" if self.per_call else ""
        return f"xylem.File({self.path!r}, name={self.name!r}," \
               f" cache={self.cache!r}{once})"

    def __eq__(self, other):
        return isinstance(other, File) and \
            (self.path, self.name, self.cache, self.per_call) == \
            (other.path, other.name, other.cache, other.per_call)

    def __hash__(self):
        return hash((self.path, self.name, self.cache, self.per_call))


class Temp:
    """A file that never comes to this side: the call that has it in its
    outputs leaves it on its worker, and calls that have the same Temp
    object in their inputs run there or get it from that worker
    (docs/dataplane.md, "Temps and lineage"). If every copy is lost, the
    call that made it runs again before its readers. ``name`` is its name
    in the sandbox, ``cache`` as for File ("task" counts as "workflow"),
    ``replicas`` the copies kept once it is made. Each Temp object is a
    distinct temp, given back to the manager when the object is garbage
    collected (or by ``Executor.release``): calls submitted before then
    still read it, and it is made again for them if lost."""

    __slots__ = ("name", "cache", "replicas", "__weakref__")

    def __init__(self, name, cache="workflow", replicas=1):
        if not name:
            raise ValueError("a Temp needs a name in the sandbox")
        if cache not in CACHE_LEVELS:
            raise ValueError(f"cache must be one of {', '.join(CACHE_LEVELS)},"
                             f" not {cache!r}")
        if not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be an int >= 1, not"
                             f" {replicas!r}")
        self.name = name
        self.cache = cache
        self.replicas = replicas

    def __repr__(self):
        return f"xylem.Temp({self.name!r}, cache={self.cache!r}," \
               f" replicas={self.replicas})"
