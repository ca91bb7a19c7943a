"""xylem.Executor: a concurrent.futures.Executor that runs Python calls
and shell commands on Xylem workers (docs/python.md).

Each Executor owns a manager (xylem._core.Manager, whose event loop runs
on a thread of its own) and, unless told otherwise, one local worker per
core. A call goes, by default, to a warm library process on a worker
(library.py): the function is pickled with cloudpickle and sent in the
call's payload (a large one, once sent, as an object that each worker
fetches once: _calls.FunctionRefs), and its value or exception comes
back as the reply. With fresh=True a call runs instead as a command task,
``python -m xylem.runner``, in a process of its own (runner.py). A
ShellFunction runs as a command task (shell.py).

Threads: user threads call submit; the manager's thread calls
_on_results with completed tasks, and sets the Futures from there. The
executor's lock guards only its own tables, and is never held across a
call into the manager, since the manager's thread may be waiting for it.

Files: an input File is declared once and kept (in _handles) until
release() or shutdown; a per_call input, an output, and the buffers and
result files of one call are declared for that call and given back once
it is submitted (the manager keeps them while the call needs them); a
Temp is given back when the Temp object is garbage collected.
"""

import atexit
import concurrent.futures as cf
import functools
import itertools
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref

from . import _batch, _calls, _core, _interrupt
from ._callbacks import Callbacks
from .cwl import CWLApp
from .errors import (InputMissing, InterpreterMismatch, LibraryCrashed,
                     ManagerFailed, PickleError, ResourcesExhausted,
                     TaskFailed, Unschedulable, WorkerFailed)
from .environment import Environment
from .files import File, Temp
from .pools import ProviderJobs
from .shell import ShellFunction
from . import _printed
from . import shell as shell_mod
from .workers import LocalWorkers, find_xylem

# Executors not yet shut down, which the interpreter's exit shuts down.
_live = weakref.WeakSet()
_library_numbers = itertools.count(1)

# Per-call options and their defaults (docs/python.md, "Options").
DEFAULT_OPTIONS = {
    "cores": 1,         # cores the call or command needs
    "memory": 0,        # MB; 0: no declared need, no limit
    "disk": 0,          # MB of sandbox
    "gpus": 0,
    "inputs": (),       # xylem.File (or paths): staged into the sandbox
    "outputs": (),      # xylem.File: brought back from the sandbox
    "env": None,        # dict of environment variables for the call
    "retries": 0,       # further attempts after a failure
    "time_limit": 0,    # seconds; past it: ResourcesExhausted
    "priority": 0.0,    # higher runs first
    "tag": None,        # a label shown in status and history
    "fresh": None,      # True: a new process for this call
    "environment": None,  # xylem.Environment to run in (None: the
                          # Executor's)
}


# The options that _resources hands to the manager as they are.
_RESOURCE_KEYS = ("cores", "memory", "disk", "gpus", "retries", "priority",
                  "tag")

# A task's shape: what a worker must have to run it, and how to say it.
_SHAPE_KEYS = ("cores", "memory", "disk", "gpus")
_SHAPE_UNITS = {"cores": "cores", "memory": "MB of memory",
                "disk": "MB of disk", "gpus": "GPUs"}

# Seconds between two looks at the connected workers for one shape that
# none of them (or none yet) could run.
_FIT_RECHECK_S = 1.0


def _shortfall(need, worker):
    """The keys of need (a shape) that worker (a dict with the shape's
    keys) cannot meet, as the scheduler judges: cores and GPUs always,
    memory and disk when the worker gives them (0: unknown)."""
    short = []
    for k, n in zip(_SHAPE_KEYS, need):
        have = worker.get(k) or 0
        if n > have and (have or k in ("cores", "gpus")):
            short.append(k)
    return short


def _shape_text(need, keys):
    return ", ".join(f"{n} {_SHAPE_UNITS[k]}"
                     for k, n in zip(_SHAPE_KEYS, need) if k in keys)


def _check_options(opts):
    """A complete, checked option dict from defaults and changes."""
    unknown = set(opts) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))};"
                        f" known: {', '.join(DEFAULT_OPTIONS)}")
    o = dict(DEFAULT_OPTIONS)
    o.update(opts)
    for k in ("cores", "memory", "disk", "gpus", "retries"):
        if not isinstance(o[k], int) or o[k] < 0:
            raise ValueError(f"{k} must be an int >= 0, not {o[k]!r}")
    if o["time_limit"] is None:
        o["time_limit"] = 0
    if o["time_limit"] < 0:
        raise ValueError("time_limit must be >= 0 seconds")
    o["inputs"] = tuple(File.of(f) for f in o["inputs"] or ())
    o["outputs"] = tuple(File.of(f) for f in o["outputs"] or ())
    if o["env"] is not None:
        o["env"] = {str(k): str(v) for k, v in o["env"].items()}
    if o["environment"] is not None and \
            not isinstance(o["environment"], Environment):
        o["environment"] = Environment(o["environment"])
    return o


class _Future(cf.Future):
    """A Future whose cancel() also cancels its task. It stays pending
    until its result arrives, so cancel() works wherever the task is. Its
    done-callbacks run on its Executor's callback thread when the
    manager's thread finishes it (_callbacks.py)."""

    _xy_on_cancel = None
    _xy_executor = None

    def cancel(self):
        if not super().cancel():
            return False
        if self._xy_on_cancel is not None:
            self._xy_on_cancel()
        return True

    def add_done_callback(self, fn):
        ex = self._xy_executor
        if ex is not None:
            fn = ex._callbacks.wrap(fn, lambda: ex._loop_ident)
        super().add_done_callback(fn)


class _Pending:
    """What the executor keeps about a task until its result comes."""

    __slots__ = ("future", "kind", "result_path", "shell", "marker", "app",
                 "back", "tag")

    def __init__(self, future, kind, result_path=None, shell=None,
                 marker=None, app=None, back=None):
        self.future = future
        self.kind = kind  # "call", "fresh", "shell" or "cwl"
        self.result_path = result_path
        self.shell = shell
        self.marker = marker
        self.app = app    # a CWLApp, and the directory its outputs reach
        self.back = back
        self.tag = None   # the task's tag (_printed.default_tag)


# The package's own directory, and the one holding it (an installed
# package's site-packages, with every other package of this side).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_SITE_NAMES = ("site-packages", "dist-packages")


def _site_dirs():
    """The real paths of the standard library and the site directories,
    and of the directory holding this package."""
    dirs = {os.path.realpath(os.path.dirname(_PACKAGE_DIR))}
    for k in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(k)
        if p:
            dirs.add(os.path.realpath(p))
    try:
        import site
        for p in site.getsitepackages() + [site.getusersitepackages()]:
            dirs.add(os.path.realpath(p))
    except (AttributeError, TypeError):
        pass  # a virtualenv's old site.py lacks them
    return dirs


def _program_paths():
    """The program's own module directories in sys.path (its script's
    directory, PYTHONPATH): not the standard library, nor a site
    directory, nor the one that holds xylem, whose packages are this
    interpreter's and would shadow an environment's (or confuse another
    version)."""
    skip = _site_dirs()
    paths = []
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        p = os.path.abspath(p)
        real = os.path.realpath(p)
        if real in skip or os.path.basename(real) in _SITE_NAMES:
            continue
        if p not in paths:
            paths.append(p)
    return paths


def _open_to_task_users(tmpdir):
    """Local workers that run calls and commands under accounts of their
    own (XYLEM_TASK_USERS, as root; docs/security.md) keep their caches in
    tmpdir, and those accounts import xylem from it (_xylem_only_dir):
    they may pass through it, not list it, as `xylem run` does its own
    directory. The secret file in it stays 0600, the TLS directory
    0700."""
    if os.environ.get("XYLEM_TASK_USERS") and os.geteuid() == 0:
        os.chmod(tmpdir, 0o711)


def _xylem_only_dir(tmpdir):
    """A directory holding only the xylem package (a symbolic link to
    this one), for the PYTHONPATH of library and runner processes: the
    directory that holds the package itself may be site-packages."""
    d = os.path.join(tmpdir, "pythonpath")
    os.mkdir(d)
    os.chmod(d, 0o755)  # for task accounts too, whatever the umask
    os.symlink(_PACKAGE_DIR, os.path.join(d, "xylem"))
    return d


def _journal_secret(journal):
    """journal/secret, made with 32 random bytes (hex) if it is not there
    yet, as `xylem run --journal` does."""
    path = os.path.join(journal, "secret")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode() + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def _journal_port(journal):
    """The port the manager listened on in the run before (0: none)."""
    if journal is None:
        return 0
    try:
        with open(os.path.join(journal, "port")) as f:
            port = int(f.read().strip())
    except (OSError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0


def _save_journal_port(journal, port):
    path = os.path.join(journal, "port")
    try:
        with open(path + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(path + ".tmp", path)
    except OSError as e:
        warnings.warn(f"xylem: cannot keep the port in {path}: {e}")


def _read_secret(path):
    with open(path, "rb") as f:
        s = f.read().rstrip(b"\r\n")
    if not s:
        raise ValueError(f"secret file {path} is empty")
    return s


class _Options:
    """A view of an Executor with other per-call options: submit and map
    as the Executor's, options() to change more. Cheap to make."""

    def __init__(self, executor, opts):
        self._executor = executor
        self._opts = opts

    def options(self, **changes):
        merged = dict(self._opts)
        merged.update(changes)
        return _Options(self._executor, _check_options(merged))

    def submit(self, fn, /, *args, **kwargs):
        return self._executor._submit(self._opts, fn, args, kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        # In chunks, as the Executor's (_batch.py).
        return _batch.map_calls(self._executor, self._opts, fn, iterables,
                                timeout, chunksize)

    def __repr__(self):
        changed = {k: v for k, v in self._opts.items()
                   if v != DEFAULT_OPTIONS[k]}
        return f"<xylem options {changed} of {self._executor!r}>"


def _cores_here():
    """The cores this process may use: inside a Slurm job the job's on
    this node (SLURM_CPUS_ON_NODE), else those of its CPU affinity."""
    if os.environ.get("SLURM_JOB_ID"):
        try:
            n = int(os.environ.get("SLURM_CPUS_ON_NODE", ""))
            if n > 0:
                return n
        except ValueError:
            pass
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _each_finally(steps):
    """Runs each of steps, the next in a finally of the one before: an
    interrupt (a Ctrl-C, or SIGTERM as SystemExit) in one still runs the
    rest."""
    if steps:
        try:
            steps[0]()
        finally:
            _each_finally(steps[1:])


class Executor(cf.Executor):
    """Runs calls on Xylem workers.

    workers: local workers to start (None: one per core; 0: none, serve
        workers that connect from elsewhere).
    cores_per_worker: cores each local worker offers (default 1).
    port, host: where the manager listens (default: any free port; on
        127.0.0.1 when only local workers are served, else on every
        interface).
    secret, secret_file: the shared secret (bytes, or a file holding it).
        Default: $XYLEM_SECRET, else a fresh one in a 0600 file, whose
        path is the secret_file attribute.
    tls, tls_dir: TLS 1.3 on every connection (docs/security.md), on
        unless tls=False (plain TCP, with a warning). tls_dir keeps the
        manager's CA (default: $XYLEM_TLS_DIR, else a private directory
        for this executor); workers started elsewhere verify the manager
        with ``--tls-ca`` the tls_ca attribute.
    fresh: run each call in a fresh process instead of a warm library.
    python: the interpreter command workers run (default sys.executable;
        with an environment, its own python).
    environment: a xylem.Environment (or a path to make one from) that
        calls and commands run in unless their options say otherwise.
    pythonpath: PYTHONPATH for the library and runner processes.
    library_env: further environment variables for them.
    name, history: the manager's name and an SQLite run history path.
    pools: xylem.Pool objects: workers from a batch system (or local
        processes), as many as the queued calls need, within each pool's
        limits (docs/scaling.md). With pools, workers defaults to 0, and
        a call no pool's worker could run fails with xylem.Unschedulable.
    journal: a directory (made if needed) where the manager records each
        call and command that finished well, with its result: the same
        program run again on it gets those Futures' results without
        running them again, and the calls its local workers (which
        outlive a killed program for their lease) still hold, since the
        manager's port and secret are kept there too (docs/python.md,
        "Journal"). journal_sync: also fdatasync the records, to survive
        a machine's crash, not only the program's. http: serve the live
        dashboard and /metrics on "[HOST:]PORT" (or a port, on loopback;
        0: any free one), at the address in the dashboard_url attribute
        (docs/observability.md).

    endpoint: "unix:PATH", a shared endpoint's socket, or "HOST:PORT",
        its TLS listener (docs/endpoint.md): the calls run on your own
        session server there, not in this process; session= re-attaches
        to an earlier one (ex.session). Over TLS, tls_cert=, tls_key=
        and tls_ca= name the files `xylem endpoint enroll` wrote
        (default: XYLEM_ENDPOINT_CERT, XYLEM_ENDPOINT_KEY,
        XYLEM_ENDPOINT_CA, else ~/.xylem/endpoint-client/client.crt,
        client.key, ca.crt); pools= names pools the administrator
        offers. The executor is then an xylem.endpoint.EndpointExecutor.
    """

    def __new__(cls, *args, endpoint=None, session=None, **kwargs):
        if endpoint is None:
            if session is not None:
                raise TypeError("session= needs endpoint=")
            return super().__new__(cls)
        # A remote endpoint's client files (docs/endpoint.md).
        tls_files = {k: kwargs.pop(k) for k in ("tls_cert", "tls_key",
                                                "tls_ca") if k in kwargs}
        pools = kwargs.pop("pools", None)
        if args or kwargs:
            raise TypeError("with endpoint=, an Executor takes session=, "
                            "pools= (names) and tls_cert=, tls_key=, "
                            "tls_ca= only; the endpoint's administrator "
                            "sets the rest")
        from .endpoint import EndpointExecutor
        return EndpointExecutor(endpoint, session=session, pools=pools,
                                **tls_files)

    def __init__(self, workers=None, *, port=0, host=None, secret=None,
                 secret_file=None, cores_per_worker=1, fresh=False,
                 python=None, pythonpath=None, library_env=None, name=None,
                 history=None, environment=None, pools=None, journal=None,
                 journal_sync=False, tls=True, tls_dir=None,
                 call_output="terminal", http=None, endpoint=None,
                 session=None):
        # endpoint= and session= are __new__'s (None here).
        self._call_output = _printed.check(call_output)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = {}
        self._keys = itertools.count(1)
        self._handles = {}
        # Temp -> (handle, the finalizer that gives it back, at most once)
        self._temps = weakref.WeakKeyDictionary()
        self._pickles = _calls.FunctionPickles()
        self._shutdown = False
        self._closing = False
        self._closed = threading.Event()
        self._hurrying = threading.Event()
        self._settled = set()  # shapes that fit a worker, or warned of
        self._unsettled = {}   # shapes seen with no worker yet -> when
        self._fit_watcher = None
        self._fit_lock = threading.Lock()
        self._local = None
        self._pools = []
        self._provider_jobs = None  # pools whose provider is an object
        self._manager = None
        self._fresh = bool(fresh)
        self._callbacks = Callbacks()
        # Declarations made on first use (libraries, environments, files,
        # function pickles) happen once even when threads submit at once.
        # Never taken on the manager's thread, which runs no user code, so
        # holding it across a call into the manager cannot deadlock.
        self._declare_lock = threading.RLock()
        # A large function's pickle, once sent, travels as an object that
        # each worker fetches once and keeps while the executor lives.
        self._function_refs = _calls.FunctionRefs(
            lambda data: self._manager.declare_buffer(data, "workflow"),
            self._declare_lock)
        self._loop_ident = None  # the manager thread's, once it calls back
        # Map chunks and bursts of submits sent together (_batch.py).
        self._batching = _batch.Batching(self)
        self._defaults = _check_options({"environment": environment})
        self._libraries = {}   # Environment (or None) -> library name
        self._env_handles = {}  # Environment -> unpack handle
        self._tmpdir = tempfile.mkdtemp(prefix="xylem-py-")
        _open_to_task_users(self._tmpdir)
        self._journal = None if journal is None else \
            os.path.abspath(os.fspath(journal))
        self._tls = (tls, tls_dir)
        # The live dashboard (docs/observability.md): "[HOST:]PORT", or a
        # port; dashboard_url says where it is.
        self._http = None if http is None else str(http)
        self.dashboard_url = None
        try:
            self._start(workers, port, host, secret, secret_file,
                        cores_per_worker, python, pythonpath, library_env,
                        name, history, list(pools or ()), journal_sync)
        except BaseException:
            self._close()
            raise
        _live.add(self)
        _interrupt.watch_sigterm(_live)

    def _start(self, workers, port, host, secret, secret_file, cpw, python,
               pythonpath, library_env, name, history, pools, journal_sync):
        if workers is None:
            # Pools bring the workers: none local unless asked for.
            workers = 0 if pools else _cores_here()
        self._pools = pools
        # Pools' workers (a batch system's) connect from elsewhere.
        local_only = (not port and secret is None and secret_file is None
                      and workers > 0 and not pools)
        if self._journal is not None:
            # The workers of a run before may still hold its calls (for
            # their lease): the same port and secret let them back in.
            os.makedirs(self._journal, mode=0o700, exist_ok=True)
            if secret is None and secret_file is None and \
                    not os.environ.get("XYLEM_SECRET"):
                secret_file = _journal_secret(self._journal)
        if secret_file is not None:
            secret = _read_secret(secret_file)
        elif secret is None and os.environ.get("XYLEM_SECRET"):
            secret = os.environ["XYLEM_SECRET"].encode()
        if secret is None:
            secret = secrets.token_hex(32).encode()
        elif isinstance(secret, str):
            secret = secret.encode()
        if secret_file is None:
            secret_file = os.path.join(self._tmpdir, "secret")
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                         0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secret + b"\n")
        self.secret_file = secret_file
        if host is None and local_only:
            host = "127.0.0.1"
        # Only its own workers can ever come: a task none of them can run
        # fails at once (_check_fits).
        self._local_only = local_only
        kept_port = _journal_port(self._journal) if not port else 0
        tls, tls_dir = self._tls
        if tls_dir is None:
            # With a journal, beside it: the next executor on it keeps
            # the CA.
            tls_dir = (os.environ.get("XYLEM_TLS_DIR")
                       or os.path.join(self._journal or self._tmpdir, "tls"))
        tls_opts = {"tls_dir": tls_dir, "no_tls": not tls,
                    "http": self._http}
        try:
            self._manager = _core.Manager(
                port=kept_port or port, host=host, secret=secret,
                history=history, name=name, journal=self._journal,
                journal_sync=bool(journal_sync), **tls_opts)
        except OSError:
            if not kept_port:
                raise
            # Taken by another program since: workers of the run before
            # cannot come back, and their calls run again.
            self._manager = _core.Manager(
                port=port, host=host, secret=secret, history=history,
                name=name, journal=self._journal,
                journal_sync=bool(journal_sync), **tls_opts)
        if self._journal is not None:
            _save_journal_port(self._journal, self._manager.port)
        self.tls_ca = self._manager.tls_ca
        self.dashboard_url = self._manager.http_url
        self._manager.set_callback(self._on_results)
        for pool in pools:
            opts = pool.options(find_xylem())
            if pool.external:
                if self._provider_jobs is None:
                    self._provider_jobs = ProviderJobs(self._manager,
                                                       self._worker_command)
                self._provider_jobs.add(pool, self._tmpdir)
                opts["hooks"] = self._provider_jobs.hook
            try:
                self._manager.add_pool(**opts)
            except ValueError as e:
                raise ValueError(f"xylem.Executor: {e}") from None
        self._python = python or sys.executable
        self._env = {
            _calls.PYTHON_ENV: "%d.%d" % sys.version_info[:2],
            # Prints reach the log as they happen, so a crash shows them.
            "PYTHONUNBUFFERED": "1",
        }
        self._pythonpath = pythonpath
        if pythonpath is None:
            self._xylem_dir = _xylem_only_dir(self._tmpdir)
            self._program_paths = _program_paths()
        self._library_env = {str(k): str(v)
                             for k, v in (library_env or {}).items()}
        self._python_given = python is not None
        self._library = self._library_for(self._defaults["environment"])
        if workers > 0:
            self._local = LocalWorkers(workers, self._manager.port,
                                       secret_file, self._tmpdir, cpw,
                                       tls_ca=self.tls_ca)

    # ------------------------------------------------------------ public

    @property
    def port(self):
        """The port the manager listens on, for workers started elsewhere
        (``xylem worker HOST:PORT --secret-file F``)."""
        return self._manager.port

    def options(self, **opts):
        """A view with these per-call options: ``ex.options(cores=2,
        inputs=[xylem.File("a.txt")]).submit(fn, x)``. Options: cores,
        memory, disk, gpus, inputs, outputs, env, retries, time_limit,
        priority, tag, fresh, environment."""
        return _Options(self, _check_options(opts))

    def submit(self, fn, /, *args, **kwargs):
        """Schedules fn(*args, **kwargs) and returns its Future. fn may be
        a ShellFunction, which runs as a command."""
        return self._submit(self._defaults, fn, args, kwargs)

    def map(self, fn, *iterables, timeout=None, chunksize=None):
        """As concurrent.futures.Executor.map, results in order, with
        the calls sent in chunks of chunksize calls (default: sized from
        their measured cost), each one message, and the input read ahead
        by a bounded number of chunks (docs/python.md, "Batched
        calls")."""
        return _batch.map_calls(self, self._defaults, fn, iterables,
                                timeout, chunksize)

    def stats(self):
        """The manager's counters (tasks, workers, cores, bytes, files
        and objects in its catalogue)."""
        return self._manager.stats()

    def release(self, *files):
        """Gives back this executor's declarations of files (Files, paths
        or Temps) that no later call will name: the manager forgets each
        once no call needs it any more (calls submitted before keep
        theirs). A file named again is declared again (and hashed again).
        Release a file once no other thread is submitting a call that
        names it. Files never declared, or released already, are
        skipped."""
        for f in files:
            f = File.of(f)
            if isinstance(f, Temp):
                entry = self._temps.pop(f, None)
                if entry is not None:
                    entry[1]()  # its finalizer, which then does nothing
                continue
            h = self._handles.pop((f.path, f.cache), None)
            if h is not None:
                _give_back(self._manager, h)

    def status(self):
        """The manager's status document, as `xylem status --json`."""
        import json
        return json.loads(self._manager.status_json())

    def shutdown(self, wait=True, *, cancel_futures=False):
        """As concurrent.futures.Executor.shutdown: no new calls; with
        cancel_futures, cancels the pending ones; with wait, returns once
        every Future is done and the manager and local workers are gone
        (else that happens in the background)."""
        if threading.get_ident() == self._loop_ident or \
                self._callbacks.on_thread():
            # From a done-callback: it does not wait (on the manager's
            # thread, that would wait for this very thread).
            wait = False
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
            pending = [p.future for p in self._pending.values()]
        if cancel_futures:
            for f in pending:
                f.cancel()
        if not first:
            if wait:
                self._closed.wait()
            return
        if wait:
            self._wait_idle()
            self._close()
            # Every Future is done: their callbacks have run too when
            # this returns, as with the standard executors (but for a
            # shutdown from a callback, which cannot wait for itself).
            self._callbacks.stop(wait=True)
        else:
            # Not a daemon: the interpreter's exit waits for it, as it
            # waits for the standard executors' work.
            threading.Thread(target=self._close_when_idle,
                             name="xylem-shutdown").start()

    def __exit__(self, exc_type, exc_val, exc_tb):
        """A normal exit waits for every Future, as concurrent.futures
        does. An exit on an exception (a Ctrl-C, SystemExit, any error),
        or an interrupt during that wait, cancels every pending Future,
        running calls included, and returns once the workers, the
        manager and the temporary directories are gone."""
        if exc_type is None:
            try:
                self.shutdown(wait=True)
            except BaseException:
                self._abort()
                raise
        else:
            self._abort()
        return False

    def __repr__(self):
        state = "shut down" if self._shutdown else "running"
        port = self._manager.port if self._manager else "-"
        return f"<xylem.Executor port={port} {state}" \
               f" pending={len(self._pending)}>"

    # ------------------------------------------------------------ submit

    def _submit(self, opts, fn, args, kwargs):
        fresh = self._fresh if opts["fresh"] is None else opts["fresh"]
        if self._batching.takes(opts, fn, fresh):
            # Sent with the rest of its burst (_batch.py), unless it is
            # the first of one.
            f = self._batching.submit(opts, fn, args, kwargs)
            if f is not None:
                return f
        if opts["environment"] is None and \
                self._defaults["environment"] is not None:
            opts = dict(opts, environment=self._defaults["environment"])
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after"
                                   " shutdown")
            key = next(self._keys)
        future = _Future()
        future._xy_executor = self
        future._xy_on_cancel = functools.partial(self._cancelled, key)
        spec = {}
        try:
            environment = opts["environment"]
            if isinstance(fn, ShellFunction):
                pending, spec = self._shell_spec(future, fn, args, kwargs)
            elif isinstance(fn, CWLApp):
                if args:
                    raise TypeError("a CWLApp takes keyword arguments only")
                spec, back = fn.task_spec(self._manager, kwargs)
                pending = _Pending(future, "cwl", app=fn, back=back)
            elif fresh:
                pending, spec = self._fresh_spec(future, key, fn, args,
                                                 kwargs, opts["env"],
                                                 environment)
            else:
                pending, spec = self._call_spec(future, fn, args, kwargs,
                                                opts["env"], environment)
            spec.update(self._resources(opts, spec))
            if spec.get("tag") is None:
                spec["tag"] = _printed.default_tag(fn)
            pending.tag = spec["tag"]
            self._check_fits(spec)
        except Exception as e:
            # A Future that fails at once loses nothing else (docs:
            # errors): unpicklable functions and arguments land here.
            for h in spec.pop("release", ()):
                _give_back(self._manager, h)
            future.set_running_or_notify_cancel()
            future.set_exception(e)
            return future
        # The call's own files: given back once it is submitted, which it
        # is first (the manager runs posts in order), so that the call
        # holds them until it ends.
        own = spec.pop("release", ())
        with self._lock:
            self._pending[key] = pending
        try:
            self._manager.submit(key, **spec)
        except Exception as e:
            with self._lock:
                self._pending.pop(key, None)
            if future.set_running_or_notify_cancel():
                future.set_exception(e)
        finally:
            for h in own:
                _give_back(self._manager, h)
        return future

    def _python_in(self, environment):
        """The interpreter command: in an environment, its own python
        (first on PATH there), unless the Executor was given one."""
        if environment is not None and not self._python_given:
            return "python"
        return shlex.quote(self._python)

    def _process_env(self, environment):
        """The variables of the library and runner processes that run in
        environment (None: the worker's own Python). PYTHONPATH is the
        pythonpath given, else a directory holding only xylem and then the
        program's own directories; in an environment, those come after
        the environment's own packages instead (xylem/__init__.py appends
        them), so that they shadow none of its packages."""
        env = dict(self._env)
        if self._pythonpath is not None:
            env["PYTHONPATH"] = self._pythonpath
        elif environment is None:
            env["PYTHONPATH"] = os.pathsep.join([self._xylem_dir] +
                                                self._program_paths)
        else:
            env["PYTHONPATH"] = self._xylem_dir
            if self._program_paths:
                env[_calls.PATH_AFTER_ENV] = os.pathsep.join(
                    self._program_paths)
        env.update(self._library_env)
        return env

    def _environment_handle(self, environment):
        if environment is None:
            return None
        h = self._env_handles.get(environment)
        if h is not None:
            return h
        with self._declare_lock:
            h = self._env_handles.get(environment)
            if h is None:
                archive = self._manager.declare_file(environment.tarball,
                                                     environment.cache)
                h = self._manager.declare_unpack(archive, environment.cache)
                self._env_handles[environment] = h
        return h

    def _library_for(self, environment):
        """The warm library whose instances run in environment: one per
        environment, declared when first needed."""
        name = self._libraries.get(environment)
        if name is not None:
            return name
        with self._declare_lock:
            name = self._libraries.get(environment)
            if name is None:
                name = self._library_name(environment)
                self._manager.declare_library(
                    name, f"{self._python_in(environment)} -m"
                    " xylem.library", env=self._process_env(environment),
                    environment=self._environment_handle(environment))
                self._libraries[environment] = name
        return name

    def _library_name(self, environment):
        """A fresh name; with a journal, one that the same program gives
        the same library in a later run, since a call's library is part
        of what the journal knows it by: a digest of the interpreter
        command, its version and the environment's archive."""
        if self._journal is None:
            return f"xylem-py-{os.getpid()}-{next(_library_numbers)}"
        import hashlib
        what = repr((self._python_in(environment), sys.version_info[:2],
                     None if environment is None else
                     (environment.source, environment.cache)))
        return "xylem-py-" + hashlib.sha256(what.encode()).hexdigest()[:16]

    def _call_spec(self, future, fn, args, kwargs, env, environment=None):
        payload, inputs = self._encode(fn, args, kwargs, env)
        own = []
        if len(payload) > _calls.MESSAGE_MAX:
            # Too large for a message: the payload travels as a file.
            h = self._manager.declare_buffer(payload, "task")
            own.append(h)
            inputs.append((h, _calls.CALL_FILE))
            payload = _calls.encode_indirect(_calls.CALL_FILE)
        spec = {"library": self._library_for(environment),
                "payload": payload, "inputs": inputs, "release": own}
        return _Pending(future, "call"), spec

    def _fresh_spec(self, future, key, fn, args, kwargs, env,
                    environment=None):
        payload, inputs = self._encode(fn, args, kwargs, env)
        h = self._manager.declare_buffer(payload, "task")
        path = os.path.join(self._tmpdir, "results", f"{key}.pkl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        out = self._manager.declare_file(path, "task")
        spec = {"command": f"{self._python_in(environment)} -m"
                           " xylem.runner",
                "inputs": inputs + [(h, _calls.CALL_FILE)],
                "outputs": [(out, _calls.RESULT_FILE)],
                "env": self._process_env(environment),
                "release": [h, out]}
        return _Pending(future, "fresh", result_path=path), spec

    def _shell_spec(self, future, shell, args, kwargs):
        command, marker = shell.wrapper(shell.format(*args, **kwargs),
                                        stable=self._journal is not None)
        spec = {"command": command}
        if shell.time_limit():
            spec["time_limit"] = float(shell.time_limit())
        if getattr(shell, "cores", None):
            # An MPIFunction needs a core per rank (on one worker).
            spec["cores"] = shell.cores
        return _Pending(future, "shell", shell=shell, marker=marker), spec

    def _encode(self, fn, args, kwargs, env):
        """(payload, inputs): the call's payload, and the input that holds
        its function's pickle when that goes by reference (_calls.py,
        FunctionRefs)."""
        try:
            digest, fn_bytes = self._pickles.get(fn)
        except Exception as e:
            raise _pickle_error(fn, e) from e
        ref = self._function_refs.get(digest, fn_bytes)
        try:
            payload = _calls.encode_call(
                digest, fn_bytes if ref is None else _calls.FN_FILE, args,
                kwargs, env)
        except Exception as e:
            raise _pickle_error(fn, e) from e
        return payload, [] if ref is None else [(ref, _calls.FN_FILE)]

    def _resources(self, opts, spec):
        """The manager's task fields for opts, merged with the spec's own
        inputs, outputs, env and time limit."""
        r = {k: opts[k] for k in _RESOURCE_KEYS}
        if "cores" in spec:
            r["cores"] = max(r["cores"], spec["cores"])
        inputs = spec.get("inputs")
        if inputs or opts["inputs"]:
            r["inputs"] = list(inputs or ()) + \
                [(self._handle(f, spec), f.name) for f in opts["inputs"]]
        if spec.get("outputs") or opts["outputs"]:
            r["outputs"] = list(spec.get("outputs", ())) + \
                [(self._handle(f, spec, True), f.name)
                 for f in opts["outputs"]]
        r["time_limit"] = float(opts["time_limit"] or
                                spec.get("time_limit", 0))
        if "command" in spec:
            # A command's env is the process's; a warm call gets its env
            # in the payload, since the library is already running.
            env = dict(spec.get("env") or {})
            env.update(opts["env"] or {})
            r["env"] = env
            # A call's environment is its library's.
            r["environment"] = self._environment_handle(opts["environment"])
        return r

    def _check_fits(self, spec):
        """A task that no worker could ever run waits forever. With only
        its own local workers (their shape known), this raises ValueError
        for it. Else it warns, once per shape, if no worker connected so
        far (nor a local one) could run it, since a larger one may yet
        connect; a shape seen before any worker connected is looked at
        again each second until one has (_watch_fits)."""
        need = tuple(spec.get(k) or 0 for k in _SHAPE_KEYS)
        if (need[0] <= 1 and not any(need[1:])) or need in self._settled:
            return  # every worker has a core; or decided already
        if self._pools:
            return  # the manager fails it (Unschedulable) if no pool fits
        if self._local_only:
            short = _shortfall(need, self._local.shape)
            if short:
                have = tuple(self._local.shape.get(k) or 0
                             for k in _SHAPE_KEYS)
                raise ValueError(
                    f"the task asks for {_shape_text(need, short)}, but"
                    f" each of this executor's {len(self._local.procs)}"
                    f" local workers has {_shape_text(have, short)}, and"
                    f" no other worker can connect (see workers=,"
                    f" cores_per_worker=, port=)")
            self._settled.add(need)
            return
        last = self._unsettled.get(need)
        if last is None or time.monotonic() - last >= _FIT_RECHECK_S:
            with self._fit_lock:  # see _watch_fits
                if self._closing:
                    return
                self._look_for_worker(need, stacklevel=5)
        if need not in self._settled:
            self._start_fit_watcher()

    def _look_for_worker(self, need, stacklevel):
        """Settles need (a shape) if a connected or local worker could
        run it, or warns and settles it if workers are there and none
        could; with no worker yet, leaves it for a later look."""
        self._unsettled[need] = time.monotonic()
        workers = self.status()["workers"]
        if self._local is not None:
            workers.append(self._local.shape)
        if not workers:
            return
        if all(_shortfall(need, w) for w in workers):
            largest = max(tuple(w.get(k) or 0 for k in _SHAPE_KEYS)
                          for w in workers)
            warnings.warn(
                f"xylem: tasks asking for {_shape_text(need, _SHAPE_KEYS)}"
                f" wait: no worker connected so far can run them (the"
                f" largest has {_shape_text(largest, _SHAPE_KEYS)}); they"
                f" run when such a worker connects", UserWarning,
                stacklevel=stacklevel)
        self._settled.add(need)
        self._unsettled.pop(need, None)

    def _start_fit_watcher(self):
        with self._lock:
            if self._fit_watcher is not None or self._closing:
                return
            self._fit_watcher = threading.Thread(
                target=self._watch_fits, name="xylem-fits", daemon=True)
        self._fit_watcher.start()

    def _watch_fits(self):
        """Each second until the executor closes, looks again at the
        shapes of tasks submitted before any worker connected. It holds
        _fit_lock while it asks the manager, and _close takes that lock
        before closing it, so that no question is left unanswered."""
        while not self._closed.wait(_FIT_RECHECK_S):
            with self._fit_lock:
                if self._closing:
                    return
                try:
                    for need in list(self._unsettled):
                        self._look_for_worker(need, stacklevel=2)
                except (RuntimeError, OSError):
                    return  # the manager is closing

    def _handle(self, f, spec, per_call=None):
        """The manager's handle for f: a Temp's (declared once, given back
        when it is garbage collected), a File's declared for this call
        alone (per_call, by default the File's own: given back once spec
        is submitted), or a File's kept for every call that names its
        path."""
        if isinstance(f, Temp):
            return self._temp_handle(f)
        if per_call or (per_call is None and f.per_call):
            h = self._manager.declare_file(f.path, f.cache)
            spec.setdefault("release", []).append(h)
            return h
        key = (f.path, f.cache)
        h = self._handles.get(key)
        if h is not None:
            return h
        with self._declare_lock:
            h = self._handles.get(key)
            if h is None:
                h = self._manager.declare_file(f.path, f.cache)
                self._handles[key] = h
        return h

    def _temp_handle(self, f):
        entry = self._temps.get(f)
        if entry is not None:
            return entry[0]
        with self._declare_lock:
            entry = self._temps.get(f)
            if entry is None:
                h = self._manager.declare_temp(f.cache, f.replicas)
                # On whatever thread collects f: release() only posts,
                # and takes no lock of ours.
                fin = weakref.finalize(f, _give_back, self._manager, h)
                fin.atexit = False
                entry = self._temps[f] = (h, fin)
        return entry[0]

    # ----------------------------------------------------------- results

    def _on_results(self, batch):
        """On the manager's thread: sets the Futures of completed tasks."""
        self._loop_ident = threading.get_ident()
        for item in batch:
            key = item[0]
            with self._lock:
                p = self._pending.get(key)
            if p is not None:
                try:
                    # (key, result, exit_code, output, error, worker,
                    # attempts, times, failure): _core.c
                    self._complete(p, *item[1:6], item[8])
                except BaseException as e:
                    # Not expected; but one bad result must not cost
                    # the rest of the batch their Futures.
                    _fail_late(p.future, e)
            with self._lock:
                self._pending.pop(key, None)
                if not self._pending:
                    self._idle.notify_all()

    def _complete(self, p, result, exit_code, output, error, worker,
                  failure):
        if result == _core.RESULT_CANCELLED:
            cf.Future.cancel(p.future)  # not ours: no second cancel
            return
        try:
            outcome = self._outcome(p, result, exit_code, output, error,
                                    worker, failure)
        except BaseException as e:
            outcome = ("err", e)
        finally:
            if p.result_path:
                try:
                    os.unlink(p.result_path)
                except OSError:
                    pass
        if not p.future.set_running_or_notify_cancel():
            return  # cancelled in the meantime
        if outcome[0] == "ok":
            p.future.set_result(outcome[1])
        else:
            p.future.set_exception(outcome[1])

    def _outcome(self, p, result, exit_code, output, error, worker,
                 failure):
        if p.kind == "cwl" and result in (_core.RESULT_SUCCESS,
                                          _core.RESULT_APP_FAILED):
            return p.app.finish(p.back, result == _core.RESULT_SUCCESS,
                                exit_code, output, error)
        if p.kind == "cwl":
            shutil.rmtree(p.back, ignore_errors=True)
        if p.kind in ("chunk", "burst"):
            return self._batching.outcome(p, result, exit_code, output,
                                          error, worker, failure)
        if result != _core.RESULT_SUCCESS:
            return "err", _failure(p.kind, result, exit_code, output, error,
                                   worker, failure)
        if p.kind == "shell":
            r = p.shell.parse(output, p.marker)
            if r is None:
                return "err", TaskFailed(
                    "the shell wrapper's output was cut or garbled",
                    _text(output), exit_code, worker)
            if r.returncode and getattr(p.shell, "check", False):
                return "err", _shell_failed(r, worker)
            return "ok", r
        if p.kind == "fresh":
            with open(p.result_path, "rb") as f:
                output = f.read()
        try:
            reply = _calls.decode_reply(output)
        except Exception as e:
            err = PickleError(f"the result could not be unpickled here:"
                              f" {type(e).__name__}: {e}")
            err.__cause__ = e
            return "err", err
        if len(reply) > 2:
            _printed.show(self._call_output, p.tag, reply[2])
        return reply[:2]

    # ---------------------------------------------------------- shutdown

    def _cancelled(self, key):
        """A Future was cancelled: forget it and cancel its task."""
        with self._lock:
            self._pending.pop(key, None)
            if not self._pending:
                self._idle.notify_all()
        try:
            self._manager.cancel(key)
        except (RuntimeError, OSError):
            pass  # closed: nothing left to cancel

    def _abort(self):
        """Shuts down at once: cancels every pending Future (which kills
        the running calls) and closes, without waiting for results. In
        the main thread a second SIGINT or SIGTERM meanwhile hurries the
        close instead of raising (_interrupt.py)."""
        with self._lock:
            self._shutdown = True
            pending = [p.future for p in self._pending.values()]
        for f in pending:
            f.cancel()
        if threading.get_ident() == self._loop_ident:
            # On the manager's thread, which _close would join.
            threading.Thread(target=self._close,
                             name="xylem-shutdown").start()
            return
        with _interrupt.hurried_by_signals(self):
            self._close()

    def _hurry(self):
        """Stops waiting for the local workers: asks them to stop now
        (a worker given SIGTERM kills its calls and exits), and has the
        close kill any that are slow. Safe in a signal handler."""
        self._hurrying.set()
        if self._local is not None:
            self._local.signal(signal.SIGTERM)

    def _wait_idle(self):
        with self._lock:
            while self._pending:
                self._idle.wait()

    def _worker_command(self, pool, job):
        """The command line of the worker that job of pool (its provider
        an object) runs."""
        host = pool.manager_host or socket.gethostname()
        cmd = [pool.xylem or find_xylem(), "worker",
               f"{host}:{self._manager.port}", "--name", job,
               "--secret-file", self.secret_file, "--cores",
               str(int(pool.cores)), "--gpus", str(int(pool.gpus)),
               "--connect-timeout", "30"]
        cmd += ["--tls-ca", self.tls_ca] if self.tls_ca else ["--no-tls"]
        if pool.memory:
            cmd += ["--memory", str(int(pool.memory))]
        return " ".join(shlex.quote(a) for a in cmd) + \
            (" " + pool.worker_options if pool.worker_options else "")

    def _close_when_idle(self):
        self._wait_idle()
        self._close()

    def _stop_local_workers(self, grace=5.0):
        """Tells the workers to exit and gives them grace seconds while
        the manager still runs (so that none is left trying to reach a
        manager that is gone), then signals those left."""
        deadline = time.monotonic() + grace
        try:
            self._manager.shutdown_workers()
            while self._local.alive() and time.monotonic() < deadline:
                # A worker not yet connected was not told: stop waiting.
                if self._manager.stats()["workers_connected"] == 0 or \
                        self._hurrying.is_set():
                    break
                time.sleep(0.01)
        except (RuntimeError, OSError):
            pass
        self._local.stop(grace=0,
                         term_wait=0.5 if self._hurrying.is_set() else 2.0)

    def _close(self):
        """Stops local workers and the manager, cancels what is left, and
        removes the temporary directory."""
        with self._lock:
            closing = self._closing
            self._closing = self._shutdown = True
        if closing:
            # Closed, or being closed by another thread (a shutdown
            # without wait): done when that is.
            self._closed.wait()
            return
        # Each step in a finally of its own: an interrupt (a Ctrl-C, or
        # SIGTERM as SystemExit) in one still runs the rest, so the
        # secret's directory goes and _closed is set, on which a later
        # close (the interpreter's exit) waits.
        steps = [self._stop_local_workers if self._local is not None
                 else None, self._close_manager,
                 self._provider_jobs.stop if self._provider_jobs is not None
                 else None,  # cancels the jobs of pools with a provider
                 self._cancel_left, self._remove_tmpdir]
        _each_finally([s for s in steps if s is not None])

    def _close_manager(self):
        if self._manager is not None:
            with self._fit_lock:  # no question left unanswered
                self._manager.close()

    def _cancel_left(self):
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        for p in left:
            cf.Future.cancel(p.future)

    def _remove_tmpdir(self):
        try:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        finally:
            self._callbacks.stop(wait=False)
            _live.discard(self)
            _interrupt.unwatch_sigterm()
            self._closed.set()


def _text(b):
    return bytes(b).decode("utf-8", "replace")


def _pickle_error(fn, e):
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return PickleError(f"cannot pickle the call to {name}:"
                       f" {type(e).__name__}: {e}")


def _give_back(manager, h):
    """Gives one declaration of handle h back to manager, from any thread
    (a finalizer's included): nothing once the manager is closed."""
    try:
        manager.release(h)
    except (ValueError, RuntimeError, OSError):
        pass  # released already, or the manager is gone


def _fail_late(future, exc):
    """Sets exc on a Future in whatever state _complete left it."""
    if future.done():
        return
    try:
        future.set_running_or_notify_cancel()
    except RuntimeError:
        pass  # already running
    if not future.done():
        future.set_exception(exc)


def _call_output(result, output, failure):
    """(text, reply) from a failed warm call's output. A call that its
    library answered (and that failed afterwards: a declared output
    missing, or not stored) carries the pickled reply, which is no text:
    reply is then the decoded reply, or None if it would not decode, and
    text is empty, since the call's prints stay in the instance's log.
    A call whose instance ended (failure says so: a crash, a limit)
    carries that log: text is then the part written since the call
    started."""
    data = bytes(output)
    answered = failure == _core.FAILURE_NONE and result in (
        _core.RESULT_APP_FAILED, _core.RESULT_WORKER_FAILED,
        _core.RESULT_MANAGER_FAILED)
    if answered and data[:1] == b"\x80":  # a pickle's first byte
        try:
            return "", _calls.decode_reply(data)
        except Exception:
            return "", None
    return _calls.this_call_output(_text(data)), None


def _wrong_interpreter(kind, exit_code, failure):
    """True if the process started to run the call refused this Python
    (xylem/__init__.py), by the status reserved for that: a library
    instance that exited with it before it was ready, or a fresh-mode
    runner that exited with it (which a function of its own that calls
    os._exit with that status would also do: docs/python.md)."""
    if exit_code != _calls.MISMATCH_STATUS:
        return False
    if kind == "call":
        return failure == _core.FAILURE_LIBRARY_START
    return kind == "fresh"


def _mismatch_line(text, exit_code):
    """The line the refusing process wrote, for people; a stand-in if its
    output lost it."""
    for line in text.splitlines():
        if _calls.MISMATCH_TEXT in line:
            return line.strip()
    return (f"xylem: {_calls.MISMATCH_TEXT}: the worker's Python is not the"
            f" manager's (exit status {exit_code})")


def _failure(kind, result, exit_code, output, error, worker, failure):
    """The exception for a task that did not succeed, classed by its
    result, its failure (xy_failure) and exit code, never by the text of
    its error or output, which the exception carries for people."""
    if kind == "call":
        text, reply = _call_output(result, output, failure)
        if reply is not None and reply[0] == "err" and \
                result == _core.RESULT_APP_FAILED:
            # The function raised, and so left its outputs unwritten: its
            # exception says why, as for any call that raised.
            exc = reply[1]
            if hasattr(exc, "add_note"):
                exc.add_note(f"xylem: {error}")
            return exc
    else:
        text = _text(output)
    args = (text, exit_code, worker, _core.result_string(result))
    if result == _core.RESULT_NOT_SUBMITTED:
        return TaskFailed(f"the manager refused the task: {error}", *args)
    if result == _core.RESULT_INPUT_MISSING:
        return InputMissing(error or "an input is missing", *args)
    if result == _core.RESULT_RESOURCES_EXHAUSTED:
        return ResourcesExhausted(error or "over a resource limit", *args)
    if result == _core.RESULT_WORKER_FAILED:
        return WorkerFailed(error or "failed on its workers too often", *args)
    if result == _core.RESULT_MANAGER_FAILED:
        return ManagerFailed(error or "the manager failed", *args)
    if result == _core.RESULT_UNSCHEDULABLE:
        return Unschedulable(error or "no pool can run it", *args)
    if _wrong_interpreter(kind, exit_code, failure):
        return InterpreterMismatch(_mismatch_line(text, exit_code), *args)
    if kind == "call" and failure != _core.FAILURE_NONE:
        return LibraryCrashed(error, *args)
    if kind == "fresh":
        return TaskFailed(f"the Python process running the call failed:"
                          f" {error or f'exit status {exit_code}'}", *args)
    return TaskFailed(error or f"failed with exit status {exit_code}", *args)


def _shell_failed(r, worker):
    """The TaskFailed of a ShellFunction(check=True) that exited non-zero:
    its output is the command's stderr tail, then its stdout tail."""
    text = r.stderr
    if r.stdout:
        text = (text + "\n" if text and not text.endswith("\n") else text) \
            + r.stdout
    why = "the command was killed at its walltime" \
        if r.returncode == shell_mod.EXIT_TIMEOUT else \
        f"the command exited with status {r.returncode}"
    return TaskFailed(why, text, r.returncode, worker,
                      _core.result_string(_core.RESULT_APP_FAILED))


def _shutdown_all():
    """At the interpreter's exit: shuts down the executors still open,
    waiting for their Futures, or, when the program is ending on a Ctrl-C
    or SIGTERM, at once (their calls cancelled)."""
    prompt = _interrupt.interrupted()
    for ex in list(_live):
        if prompt:
            ex._abort()
        else:
            ex.shutdown(wait=True)


atexit.register(_shutdown_all)
