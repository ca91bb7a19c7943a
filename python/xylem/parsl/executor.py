"""xylem.parsl.XylemExecutor: a Parsl executor that runs apps on Xylem
workers (docs/python.md, "Parsl").

Each XylemExecutor wraps a xylem.Executor (a manager in this process, and
local workers unless a Parsl provider starts them). A Parsl task becomes a
warm call: the app's function (Parsl's python_app or bash_app wrapper) runs
in a library instance on a worker, inside a sandbox; with shared_fs, in
the executor's working directory instead, and its Files are not declared.

Files (without shared_fs): every Parsl File with the file: scheme that
the task names (in ``inputs``, in ``outputs``, as a positional or
keyword argument) is declared to the manager, so that no shared
filesystem is needed. A task's standard streams, its outputs and the
staged copies it reads are declared for that task alone (outputs and
per_call Files of xylem.Executor): the manager frees each once the task
has ended and its outputs are back, so that a long run does not grow
it; the other inputs are declared once per path. Inputs
are staged into the sandbox. Outputs are brought back into a staging
directory of this executor, and put at their paths (each in one rename)
only once Xylem has run the task to its end: a task cancelled at
shutdown, or failed by Xylem, leaves nothing at its output paths; what
an app wrote before it raised is put there, as on a shared filesystem
(Parsl's own test_launch_apps expects it). The task receives copies
of its Files whose local_path is the sandbox name (the relative path
itself for a relative path, ``.parsl/N/NAME`` for others). ``stdout``
and ``stderr`` are written in the sandbox and appended to (mode "a", the
default) or written over (mode "w") their paths on this side when the
task ends.

Threads: the DataFlowKernel calls submit() (holding its submitter lock);
the xylem Executor's manager thread completes the xylem futures; a
completion thread of this executor then moves standard streams, removes
placeholders and sets the Parsl futures, so that the DataFlowKernel's
callbacks (which may submit dependent tasks, and take its locks) never
run on the manager's thread.
"""

import copy
import functools
import itertools
import logging
import math
import os
import queue
import re
import shutil
import tempfile
import threading
from concurrent.futures import CancelledError, Future
from typing import Any, Dict, List, Optional, Union

from parsl.app.errors import BadStdStreamFile, RemoteExceptionWrapper
from parsl.data_provider.files import File as ParslFile
from parsl.executors.status_handling import BlockProviderExecutor
from parsl.providers.base import ExecutionProvider
from parsl.utils import RepresentationMixin, get_std_fname_mode

import xylem
from xylem import errors as xerrors
from xylem.pools import BACKLOG_MAX

from . import _hints, _remote
from .errors import (XylemInputMissing, XylemLibraryCrashed,
                     XylemResourcesExhausted, XylemTaskFailure, XylemTimeout,
                     XylemWorkerLost)

logger = logging.getLogger(__name__)

# parsl_resource_specification keys and the xylem option each sets.
RESOURCE_KEYS = {
    "cores": "cores",
    "memory": "memory",      # MB
    "disk": "disk",          # MB
    "gpus": "gpus",
    "priority": "priority",
    "walltime": "time_limit",  # seconds
}

# Sandbox names of the standard streams.
STD_NAMES = {"stdout": ".parsl-stdout", "stderr": ".parsl-stderr"}


class _Task:
    """What the executor keeps about a submitted task until it ends."""

    __slots__ = ("tid", "future", "outputs", "std", "declared")

    def __init__(self, tid, future, outputs, std, declared):
        self.tid = tid
        self.future = future
        self.outputs = outputs  # [(sandbox name, staged path, path here)]
        self.std = std          # [(temporary path, path here, mode)]
        self.declared = declared  # the sandbox names of its Files


class XylemExecutor(BlockProviderExecutor, RepresentationMixin):
    """Runs Parsl apps on Xylem workers.

    label: the executor's label in the Parsl config.
    provider: a Parsl ExecutionProvider (SlurmProvider, LocalProvider,
        ...) whose jobs (blocks) each run one worker (``xylem worker
        HOST:PORT --name JOB --secret-file F --cores N``); None (the
        default): the executor starts ``workers`` local workers. Xylem's
        scaler, not Parsl's strategy, decides how many jobs there are: as
        many as the queued tasks' cores, memory and GPUs need on workers
        of cores_per_worker, gpus_per_worker and memory_per_worker,
        between the provider's min_blocks and max_blocks; idle workers
        go after idle_timeout seconds (docs/scaling.md). The provider's
        nodes_per_block must be 1; its init_blocks and parallelism are
        not used.
    workers: local workers to start when there is no provider (None: one
        per core; 0: none, workers connect from elsewhere).
    cores_per_worker: cores each worker offers (local or provider's).
    gpus_per_worker, memory_per_worker: GPUs and memory (MB) each of a
        provider's workers offers (0: none, not stated).
    idle_timeout: seconds a provider's worker may be idle before its job
        is released (default: Parsl's max_idletime, 120).
    address: the host name or address that provider-started workers
        connect to (default: 127.0.0.1 for a LocalProvider, else
        parsl.addresses.get_any_address()).
    port: where the manager listens (0: any free port).
    secret_file: the shared secret's file; it must be readable at the
        same path where the provider starts workers (default: generated
        in the executor's temporary directory).
    worker_command: the ``xylem`` program for provider-started workers
        (default: the one this package uses), and worker_options more
        arguments for it (e.g. ``--cache /scratch/xylem``).
    xylem_options: more keyword arguments for xylem.Executor (python,
        pythonpath, library_env, name, history, ...).
    storage_access: Parsl staging providers (default: Parsl's).
    remote_monitoring_radio: the radio for Parsl's resource monitoring
        (default: UDP to this host).
    shared_fs: True: workers see this side's files at the same paths;
        Files and standard streams are then passed as they are, not
        declared (no staging, no rewritten paths), and apps run in
        working_dir rather than in their sandboxes.
    working_dir: with shared_fs, the directory apps run in, where
        relative paths resolve (default: this process's working
        directory when the executor starts, as a LocalProvider's
        HighThroughputExecutor workers would).
    """

    def __init__(self, label: str = "xylem",
                 provider: Optional[ExecutionProvider] = None,
                 workers: Optional[int] = None,
                 cores_per_worker: int = 1,
                 gpus_per_worker: int = 0,
                 memory_per_worker: int = 0,
                 idle_timeout: float = 120.0,
                 address: Optional[str] = None,
                 port: int = 0,
                 secret_file: Optional[str] = None,
                 worker_command: Optional[str] = None,
                 worker_options: str = "",
                 xylem_options: Optional[Dict[str, Any]] = None,
                 storage_access: Optional[List[Any]] = None,
                 remote_monitoring_radio: Any = None,
                 shared_fs: bool = False,
                 working_dir: Optional[str] = None,
                 block_error_handler: Union[bool, Any] = True):
        BlockProviderExecutor.__init__(self, provider=provider,
                                       block_error_handler=block_error_handler)
        self.label = label
        self.workers = workers
        self.cores_per_worker = cores_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.memory_per_worker = memory_per_worker
        self.idle_timeout = idle_timeout
        self.address = address
        self.port = port
        self.secret_file = secret_file
        self.worker_command = worker_command
        self.worker_options = worker_options
        self.xylem_options = dict(xylem_options or {})
        self.storage_access = storage_access
        self.shared_fs = shared_fs
        if working_dir is not None and not shared_fs:
            raise ValueError("working_dir needs shared_fs=True: without a"
                             " shared filesystem, apps run in sandboxes")
        self.working_dir = working_dir
        if remote_monitoring_radio is None:
            from parsl.monitoring.radios.udp import UDPRadio
            remote_monitoring_radio = UDPRadio(
                address=self._address() if provider is not None
                else "127.0.0.1")
        self.remote_monitoring_radio = remote_monitoring_radio
        self._xy = None
        self._lock = threading.Lock()
        self._ids = itertools.count()
        # app function -> its runner, for the executor's life: a weak
        # mapping would keep them anyway (each runner refers to its key),
        # and apps live as long as the program that runs them.
        self._runners = {}
        self._done = queue.SimpleQueue()
        self._completer = None
        self._tmpdir = None
        self._cwd = None  # where apps run (shared_fs), fixed at start
        self._staging = None
        # Path here -> the staged copy that the last task to write it
        # left, which later tasks read it from (see _files).
        self._produced = {}
        self._warned = set()

    # ---------------------------------------------------------- lifecycle

    def _address(self):
        if self.address:
            return self.address
        from parsl.providers import LocalProvider
        if self.provider is None or isinstance(self.provider, LocalProvider):
            return "127.0.0.1"
        from parsl.addresses import get_any_address
        return get_any_address()

    def start(self):
        super().start()
        self._tmpdir = tempfile.mkdtemp(prefix="xylem-parsl-")
        self._staging = _staging_dir(self.run_dir, self.label)
        if self.shared_fs:
            self._cwd = os.path.abspath(self.working_dir or os.getcwd())
        opts = dict(self.xylem_options)
        if self.provider is not None:
            opts.update(workers=0, port=self.port,
                        secret_file=self.secret_file, pools=[self._pool()])
            if self._address() in ("127.0.0.1", "localhost"):
                opts.setdefault("host", "127.0.0.1")
        else:
            opts.update(workers=self.workers, port=self.port,
                        cores_per_worker=self.cores_per_worker)
            if self.secret_file is not None:
                opts["secret_file"] = self.secret_file
        opts.setdefault("name", f"parsl-{self.label}")
        self._xy = xylem.Executor(**opts)
        self._completer = threading.Thread(
            target=self._complete_loop, name=f"xylem-parsl-{self.label}",
            daemon=True)
        self._completer.start()

    def _pool(self):
        """The pool whose jobs the provider runs: Xylem's scaler sizes
        it."""
        p = self.provider
        if p.max_blocks < 1:
            raise ValueError(f"XylemExecutor {self.label!r}: the provider's"
                             f" max_blocks is {p.max_blocks}: no worker"
                             f" could ever come")
        walltime = getattr(p, "walltime", None)
        return xylem.Pool(
            _pool_name(self.label), self.cores_per_worker, provider=p, gpus=self.gpus_per_worker,
            memory=self.memory_per_worker,
            min_workers=p.min_blocks, max_workers=p.max_blocks,
            # Parsl asks for up to max_blocks at once; so may Xylem.
            backlog=max(1, min(p.max_blocks, BACKLOG_MAX)),
            walltime=_seconds(walltime) if walltime else 0,
            idle_timeout=self.idle_timeout, manager_host=self._address(),
            xylem=self.worker_command, worker_options=self.worker_options)

    @property
    def status_polling_interval(self):
        # 0: Parsl's job status poller, and so its scaling strategy,
        # leave this executor alone; Xylem's scaler runs its provider.
        return 0

    def _get_launch_command(self, block_id):
        # Parsl's own scale_out would run this; Xylem's scaler names each
        # job itself (xylem.Executor._worker_command).
        raise NotImplementedError("Xylem's scaler starts this executor's"
                                  " workers: Parsl's blocks are not used")

    def outstanding(self) -> int:
        with self._lock:
            return len(self._tasks)

    @property
    def workers_per_node(self) -> Union[int, float]:
        # Tasks a block runs at once, for Parsl's scaling strategy.
        return self.cores_per_worker

    def monitor_resources(self) -> bool:
        # Parsl's per-task resource monitor would start a process per task
        # inside the warm library; Xylem measures tasks itself.
        return False

    def shutdown(self):
        if self._xy is not None:
            # With a provider, this cancels every job it ran.
            self._xy.shutdown(wait=True, cancel_futures=True)
        if self._completer is not None:
            self._done.put(None)
            self._completer.join()
        for d in (self._tmpdir, self._staging):
            if d:
                shutil.rmtree(d, ignore_errors=True)
        super().shutdown()

    # ------------------------------------------------------------- submit

    def submit(self, func, resource_specification, *args, **kwargs):
        if self.bad_state_is_set:
            raise self.executor_exception
        tid = next(self._ids)
        opts = self._resources(resource_specification or {})
        future = Future()
        future.parsl_executor_task_id = tid
        try:
            inputs, outputs, std, args, kwargs = self._files(tid, args,
                                                             kwargs)
        except BadStdStreamFile as e:
            future.set_exception(e)
            return future
        task = _Task(tid, future,
                     [(x.name, x.path, here) for x, here in outputs], std,
                     {x.name for x in inputs} |
                     {x.name for x, _ in outputs})
        if "cores" in opts:
            # As a command task's: a warm call's process is the library's.
            opts["env"] = {"CORES": str(opts["cores"]),
                           "OMP_NUM_THREADS": str(opts["cores"])}
        opts.update(inputs=inputs, retries=0,
                    tag=f"parsl:{getattr(func, '__name__', 'app')}")
        opts["outputs"] = [x for x, _ in outputs] + \
            [xylem.File(tmp, name=name, cache="task")
             for tmp, _, _, name in std]
        with self._lock:
            self._tasks[tid] = future
        try:
            xf = self._xy.options(**opts).submit(
                self._runner(func), [x.name for x in opts["outputs"]],
                args, kwargs)
        except BaseException:
            with self._lock:
                self._tasks.pop(tid, None)
            raise
        # This callback only queues the task for the completer thread, so
        # it may run on the manager's thread itself: the plain Future's
        # add_done_callback, not the hop to the callback thread that
        # xylem's Futures make for user callbacks.
        Future.add_done_callback(xf, lambda f: self._done.put((task, f)))
        return future

    def _runner(self, func):
        """The function the library calls for an app: one object per app
        function, so that its pickle is made once (_calls.FunctionPickles)
        rather than at every task."""
        runner = self._runners.get(func)
        if runner is None:
            runner = functools.partial(_remote.run, func, cwd=self._cwd)
            try:
                self._runners[func] = runner
            except TypeError:  # not hashable: not kept
                pass
        return runner

    def _resources(self, spec):
        """xylem options from a parsl_resource_specification."""
        opts = {}
        for k, v in spec.items():
            opt = RESOURCE_KEYS.get(k)
            if opt is None:
                if k not in self._warned:
                    self._warned.add(k)
                    logger.warning("%s: resource specification key %r is"
                                   " not used by Xylem", self.label, k)
                continue
            if v is None:
                continue
            if opt == "priority":
                opts[opt] = float(v)
            elif opt == "time_limit":
                opts[opt] = float(v)
            else:
                opts[opt] = int(math.ceil(v))
        return opts

    def _files(self, tid, args, kwargs):
        """Declares the task's Parsl Files: returns the xylem inputs, the
        outputs [(xylem File of the staged copy, path here)], the standard
        streams [(temporary path, path here, mode, sandbox name)] and the
        arguments with Files rewritten to their sandbox names."""
        names = {}  # path here -> sandbox name
        inputs, outputs = {}, {}

        def sandbox_name(path):
            name = names.get(path)
            if name is None:
                rel = os.path.normpath(path)
                if os.path.isabs(rel) or rel == "." or \
                        rel.split(os.sep)[0] in ("..", ".parsl") or \
                        rel in STD_NAMES.values():
                    rel = f".parsl/{len(names)}/{os.path.basename(rel)}"
                name = names[path] = rel
            return name

        def local(f):
            # A file: File, or one of another scheme that a staging
            # provider gave a local path here (zip:, an http: download).
            return isinstance(f, ParslFile) and \
                (f.scheme == "file" or f.local_path is not None)

        def as_input(f, required):
            if not local(f):
                return f
            path = f.filepath
            if not (required and f.scheme == "file") and \
                    not os.path.exists(path):
                return f  # not ours to stage: left as it is
            name = sandbox_name(path)
            # A file that a task of ours wrote is read from its staged
            # copy: the manager knows which workers hold that one, and
            # its catalogue, which never hashes a path twice, would give
            # a path written again its first content.
            staged = self._produced.get(os.path.abspath(path))
            # The staged copy is declared for this task alone, as its
            # writer's output was: the manager lets go of it once no
            # task needs it (an idle object keeps its copies known, so a
            # reader declared later still runs where it lies).
            inputs[name] = xylem.File(staged or path, name=name,
                                      per_call=staged is not None)
            c = copy.copy(f)
            c.local_path = name
            return c

        def as_output(f):
            if not local(f):
                return f
            path = f.filepath
            name = sandbox_name(path)
            staged = os.path.join(self._staging, f"{tid}-{len(outputs)}")
            outputs[name] = (xylem.File(staged, name=name),
                             os.path.abspath(path))
            c = copy.copy(f)
            c.local_path = name
            return c

        if self.shared_fs:
            return [], [], [], args, kwargs
        args = tuple(as_input(a, False) for a in args)
        kwargs = dict(kwargs)
        std = []
        std_names = {}
        for k, v in list(kwargs.items()):
            if k == "inputs" and isinstance(v, (list, tuple)):
                kwargs[k] = [as_input(f, True) for f in v]
            elif k == "outputs" and isinstance(v, (list, tuple)):
                kwargs[k] = [as_output(f) for f in v]
            elif k in STD_NAMES:
                if v is None:
                    continue
                fname, mode = get_std_fname_mode(k, v)
                path = os.path.abspath(fname)
                name = std_names.get(path)
                if name is None:
                    name = std_names[path] = STD_NAMES[k]
                    tmp = os.path.join(self._tmpdir, f"{tid}-{k}")
                    std.append((tmp, path, mode, name))
                    _open_std(k, path, mode)
                # The sandbox's file is new: the mode applies here, when
                # the task ends (append, or write over).
                kwargs[k] = (name, mode)
            else:
                kwargs[k] = as_input(v, False)
        return (list(inputs.values()), list(outputs.values()), std, args,
                kwargs)

    # ------------------------------------------------------------ results

    def _complete_loop(self):
        while True:
            item = self._done.get()
            if item is None:
                return
            task, xf = item
            try:
                self._complete(task, xf)
            except BaseException as e:  # never leave a future pending
                logger.exception("completing task %s", task.tid)
                if not task.future.done():
                    task.future.set_exception(e)
            finally:
                with self._lock:
                    self._tasks.pop(task.tid, None)

    def _complete(self, task, xf):
        try:
            value, missing = xf.result()
            exc = None
        except CancelledError:
            exc = XylemTaskFailure(self, "the task was cancelled (the"
                                   " executor is shutting down)")
        except xerrors.TaskFailed as e:
            exc = self._failure(e)
        except Exception as e:
            exc = e
        if exc is None:
            if isinstance(value, RemoteExceptionWrapper) and \
                    not self.shared_fs:
                _hints.add(value.e_value, task.declared,
                           [tmp for tmp, _, _, _ in task.std])
            exc = self._deliver(task, missing)
        self._std(task, missing if exc is None else ())
        if task.future.done():
            return  # failed already (set_bad_state_and_fail_all)
        if exc is None:
            task.future.set_result(value)
        else:
            task.future.set_exception(exc)

    def _deliver(self, task, missing):
        """Puts the staged outputs of a task that Xylem ran to its end
        (except the missing ones, which are the worker side's
        placeholders) at their paths here; returns None, or the exception
        for the task if one could not be put there."""
        missing = set(missing)
        for name, staged, path in task.outputs:
            if name in missing:
                continue
            try:
                _put(staged, path)
            except OSError as e:
                return XylemTaskFailure(self, f"output {path} could not be"
                                        f" written here: {e}")
            with self._lock:
                self._produced[path] = staged
        return None

    def _std(self, task, missing):
        """Appends (or writes over) the task's standard streams here."""
        missing_names = set(missing)
        for tmp, path, mode, name in task.std:
            if not os.path.exists(tmp):
                continue
            try:
                if name in missing_names:
                    continue  # the app never opened it
                d = os.path.dirname(path)
                if d:
                    os.makedirs(d, exist_ok=True)
                with open(tmp, "rb") as src, \
                        open(path, "wb" if "w" in mode else "ab") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError:
                logger.exception("task %s: cannot write %s", task.tid, path)
            finally:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def _failure(self, e):
        """The Parsl exception for a xylem failure."""
        text = str(e)
        if isinstance(e, xerrors.ResourcesExhausted):
            if "time" in (e.reason or "").lower():
                exc = XylemTimeout(self, text, e)
            else:
                exc = XylemResourcesExhausted(self, text, e)
        elif isinstance(e, xerrors.WorkerFailed):
            exc = XylemWorkerLost(self, text, e)
        elif isinstance(e, xerrors.LibraryCrashed):
            exc = XylemLibraryCrashed(self, text, e)
        elif isinstance(e, xerrors.InputMissing):
            exc = XylemInputMissing(self, text, e)
        else:
            exc = XylemTaskFailure(self, text, e)
        exc.__cause__ = e
        return exc


def _pool_name(label):
    """A pool's name (1 to 32 of letters, digits, - and _) for label."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", label)[:32] or "parsl"


def _seconds(walltime):
    """Seconds in a Parsl provider's walltime: "[D-]HH:MM:SS", "MM:SS",
    or a number of seconds."""
    if isinstance(walltime, (int, float)):
        return float(walltime)
    days, _, clock = str(walltime).rpartition("-")
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part)
    return total + 86400 * float(days or 0)


def _staging_dir(run_dir, label):
    """A new directory for staged outputs: in Parsl's run directory if it
    can be, which is usually on the filesystem of the outputs' paths (a
    copy there may then share blocks, where the filesystem can)."""
    try:
        return tempfile.mkdtemp(prefix=f"{label}-outputs-", dir=run_dir)
    except (OSError, TypeError):
        return tempfile.mkdtemp(prefix=f"xylem-parsl-{label}-outputs-")


def _put(staged, path):
    """Makes path a copy of the staged file (in one rename, so that no
    partial file is ever seen there) or directory (a rename of the old
    one aside, then of the new one in). The staged one stays, as it was:
    the manager may serve it to later tasks, so path is a copy of it, not
    a link that an edit of path would change under the manager."""
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    tmp = f"{path}.xylem-{os.getpid()}-{threading.get_ident()}"
    old = tmp + ".old"
    try:
        if os.path.isdir(staged):
            shutil.copytree(staged, tmp, symlinks=True)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rename(path, old)
        else:
            shutil.copy2(staged, tmp)
        os.replace(tmp, path)
    except BaseException:
        for p in (tmp, old):
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)
        raise
    if os.path.lexists(old):
        shutil.rmtree(old, ignore_errors=True)


def _open_std(fdname, path, mode):
    """Creates (or truncates, for "w") a standard stream's file here when
    the task is submitted, as Parsl's bash wrapper does on a shared
    filesystem, so that a bad path or mode fails the task at once."""
    try:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        open(path, mode).close()
    except Exception as e:
        raise BadStdStreamFile(f"{fdname} {path!r} (mode {mode!r}): {e}") \
            from e
