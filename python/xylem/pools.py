"""Pools of workers from a batch system, for ``xylem.Executor(pools=...)``
(docs/scaling.md): the manager asks each pool for as many workers as the
queued tasks need, within the pool's limits, and releases idle ones.

A pool's provider is ``"local"`` or ``"slurm"`` (the manager runs their
commands), or an object with the methods of a Parsl ``ExecutionProvider``
(``submit``, ``status``, ``cancel``): the manager still decides how many
jobs each pool has, and a ProviderJobs thread here carries its decisions
out with that object."""

import logging
import queue
import threading
import time

PROVIDERS = ("local", "slurm", "gridengine")
BACKLOG_MAX = 10000  # XY_POOL_BACKLOG_MAX

logger = logging.getLogger("xylem.pools")


class Pool:
    """A batch system's target whose jobs each bring one worker.

    name: 1 to 32 of letters, digits, ``-`` and ``_``; unique.
    cores, gpus, memory, disk: what each worker has (memory and disk in
        MB; 0: not stated). Only GPU tasks, or tasks that no pool without
        GPUs fits, cause a GPU pool's jobs.
    provider: ``"local"`` (worker processes on this host), ``"slurm"``
        (``sbatch``, ``squeue`` and ``scancel`` on PATH),
        ``"gridengine"`` (``qsub``, ``qstat``, ``qdel`` and ``qacct``), or a
        Parsl ``ExecutionProvider`` (``SlurmProvider``, ``LocalProvider``...),
        or any object with its ``submit(command, tasks_per_node,
        job_name)``, ``status(job_ids)`` and ``cancel(job_ids)``: each job
        it submits runs one worker (``nodes_per_block`` must be 1).
    min_workers, max_workers: kept at least, had at most (0: no limit).
    backlog: jobs submitted but not yet connected, at most.
    priority: of the pools that fit a task, the highest is asked first.
    walltime: seconds a job may run (Slurm ``--time``, Grid Engine
        ``-l h_rt``; 0: the partition's or queue's); a worker drains 60 s
        before its end.
    idle_timeout: seconds a worker may stay idle before it is released.
    partition, sbatch_args: Slurm's ``--partition`` and more ``sbatch``
        arguments; for Grid Engine, the queue (``qsub -q``) and more
        ``qsub`` arguments.
    manager_host: where workers reach the manager (default: 127.0.0.1
        for local pools, this host's name for batch systems').
    log_dir: each batch worker's log, as ``DIR/NAME.log``.
    xylem: the ``xylem`` program its workers run (default: this one's).
    worker_options: with a provider object, more ``xylem worker``
        options, as a string.
    """

    def __init__(self, name, cores, *, provider="local", gpus=0, memory=0,
                 disk=0, min_workers=0, max_workers=0, backlog=4,
                 priority=0, walltime=0, idle_timeout=60, partition=None,
                 sbatch_args=(), manager_host=None, log_dir=None,
                 xylem=None, worker_options=""):
        if isinstance(provider, str):
            if provider not in PROVIDERS:
                raise ValueError(f"Pool {name!r}: provider must be one of"
                                 f" {', '.join(PROVIDERS)}, or a Parsl"
                                 f" ExecutionProvider, not {provider!r}")
        else:
            missing = [m for m in ("submit", "status", "cancel")
                       if not callable(getattr(provider, m, None))]
            if missing:
                raise TypeError(f"Pool {name!r}: the provider has no"
                                f" {', '.join(missing)}: give \"local\","
                                f" \"slurm\" or a Parsl ExecutionProvider")
            if getattr(provider, "nodes_per_block", 1) != 1:
                raise ValueError(f"Pool {name!r}: the provider's"
                                 f" nodes_per_block must be 1 (each job"
                                 f" brings one worker)")
        self.name = name
        self.cores = cores
        self.provider = provider
        self.gpus = gpus
        self.memory = memory
        self.disk = disk
        self.min_workers = min_workers
        self.max_workers = max_workers
        self.backlog = backlog
        self.priority = priority
        self.walltime = walltime
        self.idle_timeout = idle_timeout
        self.partition = partition
        if isinstance(sbatch_args, str):
            raise TypeError(f"Pool {name!r}: sbatch_args is a list of"
                            f" arguments, not a string")
        self.sbatch_args = list(sbatch_args)
        self.manager_host = manager_host
        self.log_dir = log_dir
        self.xylem = xylem
        self.worker_options = worker_options

    @property
    def external(self):
        """True if the provider is an object, not a name."""
        return not isinstance(self.provider, str)

    def options(self, xylem):
        """The keyword arguments of the manager's add_pool, its workers
        running the program at path xylem unless the pool names its own
        (with an object for provider, add hooks)."""
        xylem = self.xylem or xylem
        return dict(name=self.name, cores=int(self.cores),
                    provider="external" if self.external else self.provider,
                    gpus=int(self.gpus),
                    memory=int(self.memory), disk=int(self.disk),
                    min_workers=int(self.min_workers),
                    max_workers=int(self.max_workers),
                    backlog=int(self.backlog), priority=int(self.priority),
                    walltime=float(self.walltime),
                    idle_timeout=float(self.idle_timeout),
                    partition=self.partition, extra_args=self.sbatch_args,
                    xylem=xylem, manager_host=self.manager_host,
                    log_dir=self.log_dir)

    def __repr__(self):
        provider = (type(self.provider).__name__ if self.external
                    else repr(self.provider))
        return (f"Pool({self.name!r}, {self.cores}, provider="
                f"{provider}, max_workers={self.max_workers})")


class _Job:
    __slots__ = ("pool", "id", "ended")

    def __init__(self, pool, job_id):
        self.pool = pool
        self.id = job_id
        self.ended = False


_STOP = object()


class ProviderJobs:
    """Carries out the manager's decisions for pools whose provider is an
    object, on a thread of its own: the manager's hooks (``hook``) run on
    its loop thread and only queue a request, since a provider's calls
    block (``sbatch`` may take seconds). Each request is answered with
    ``manager.pool_job(job, id, why)``: the job's id once submitted, or
    why its submission failed; a poll every ``poll_interval`` seconds
    tells the manager of jobs that ended. stop() cancels every job not yet
    ended, after the manager is closed, so that none is left behind.

    command(pool, job): the worker's command line for that job."""

    def __init__(self, manager, command, poll_interval=5.0):
        self._manager = manager
        self._command = command
        self._poll_interval = poll_interval
        self._pools = {}  # name -> Pool
        self._jobs = {}  # job name -> _Job; only this thread touches it
        self._requests = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="xylem-pools")
        self._started = False

    def add(self, pool, script_dir):
        """Registers pool (its provider an object) before the manager
        learns of it. A Parsl provider that writes submit scripts gets
        script_dir if it has none."""
        if getattr(pool.provider, "script_dir", "") is None:
            pool.provider.script_dir = script_dir
        self._pools[pool.name] = pool
        if not self._started:
            self._started = True
            self._thread.start()

    def hook(self, what, pool, job, job_id):
        """The manager's: on its loop thread, so it only queues."""
        self._requests.put((what, pool, job, job_id))

    def stop(self):
        """After the manager has closed: the requests left are carried
        out, then every job not ended is cancelled."""
        if self._started:
            self._requests.put(_STOP)
            self._thread.join()

    # ------------------------------------------------------------ thread

    def _run(self):
        next_poll = time.monotonic() + self._poll_interval
        while True:
            try:
                req = self._requests.get(
                    timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                req = None
            if req is _STOP:
                break
            try:
                if req is not None:
                    what, pool, job, job_id = req
                    if what == "submit":
                        self._submit(pool, job)
                    else:
                        self._cancel(job)
                if time.monotonic() >= next_poll:
                    self._poll()
                    next_poll = time.monotonic() + self._poll_interval
            except Exception:
                logger.exception("pool request %r failed", req)
        for name, j in list(self._jobs.items()):
            if not j.ended:
                self._cancel(name)

    def _answer(self, job, job_id, why):
        try:
            return self._manager.pool_job(job, job_id, why)
        except RuntimeError:  # the manager is closed
            return False

    def _submit(self, pool_name, job):
        pool = self._pools[pool_name]
        try:
            job_id = pool.provider.submit(self._command(pool, job), 1, job)
        except Exception as e:
            self._answer(job, None, f"{type(e).__name__}: {e}")
            return
        if job_id is None:
            self._answer(job, None, "the provider returned no job id")
            return
        self._jobs[job] = _Job(pool, str(job_id))
        if not self._answer(job, str(job_id), None):
            self._cancel(job)  # the manager is gone or forgot it

    def _cancel(self, job):
        j = self._jobs.get(job)
        if j is None or j.ended:
            return
        j.ended = True
        try:
            j.pool.provider.cancel([j.id])
        except Exception:
            logger.exception("pool %s: cancelling job %s failed",
                             j.pool.name, j.id)

    def _poll(self):
        """Tells the manager of the jobs that ended, one status call per
        provider; forgets them."""
        by_pool = {}
        for name, j in self._jobs.items():
            by_pool.setdefault(j.pool.name, []).append((name, j))
        for pool_name, jobs in by_pool.items():
            provider = self._pools[pool_name].provider
            try:
                states = provider.status([j.id for _, j in jobs])
            except Exception:
                logger.exception("pool %s: status failed", pool_name)
                continue
            for (name, j), st in zip(jobs, states):
                if not getattr(st, "terminal", False):
                    continue
                if not j.ended:
                    state = getattr(st.state, "name", str(st.state))
                    message = getattr(st, "message", None)
                    why = f"{state.lower()}" + (f": {message}"
                                                if message else "")
                    self._answer(name, None, f"the provider says {why}")
                del self._jobs[name]
