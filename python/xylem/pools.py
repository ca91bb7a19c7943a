"""Pools of workers from a batch system, for ``xylem.Executor(pools=...)``
(docs/scaling.md): the manager asks each pool for as many workers as the
queued tasks need, within the pool's limits, and releases idle ones."""

PROVIDERS = ("local", "slurm", "gridengine")


class Pool:
    """A batch system's target whose jobs each bring one worker.

    name: 1 to 32 of letters, digits, ``-`` and ``_``; unique.
    cores, gpus, memory, disk: what each worker has (memory and disk in
        MB; 0: not stated). Only GPU tasks, or tasks that no pool without
        GPUs fits, cause a GPU pool's jobs.
    provider: ``"local"`` (worker processes on this host), ``"slurm"``
        (``sbatch``, ``squeue`` and ``scancel`` on PATH) or
        ``"gridengine"`` (``qsub``, ``qstat``, ``qdel`` and ``qacct``).
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
    """

    def __init__(self, name, cores, *, provider="local", gpus=0, memory=0,
                 disk=0, min_workers=0, max_workers=0, backlog=4,
                 priority=0, walltime=0, idle_timeout=60, partition=None,
                 sbatch_args=(), manager_host=None, log_dir=None):
        if provider not in PROVIDERS:
            raise ValueError(f"Pool {name!r}: provider must be one of"
                             f" {', '.join(PROVIDERS)}, not {provider!r}")
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

    def options(self, xylem):
        """The keyword arguments of the manager's add_pool, its workers
        running the program at path xylem."""
        return dict(name=self.name, cores=int(self.cores),
                    provider=self.provider, gpus=int(self.gpus),
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
        return (f"Pool({self.name!r}, {self.cores}, provider="
                f"{self.provider!r}, max_workers={self.max_workers})")
