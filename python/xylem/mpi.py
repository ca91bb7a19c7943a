"""xylem.MPIFunction: a ShellFunction whose command is launched with
mpirun on a number of ranks, in the manner of Globus Compute's
MPIFunction (docs/python.md, "MPI functions").

``ex.submit(MPIFunction("./hello {n}", ranks=4, walltime=60), n=3)`` runs
``mpirun -np 4 --oversubscribe ./hello 3`` as one command task that asks
the manager for 4 cores on one worker. The launcher prefix is exported to
the command as $XYLEM_MPI_PREFIX, and as $PARSL_MPI_PREFIX, the name that
Parsl and Globus Compute use. As in Globus Compute, the command is
``$XYLEM_MPI_PREFIX`` and the formatted template; with
prepend_prefix=False the template runs as written and puts the launcher
where it needs it::

    MPIFunction("cd run && $XYLEM_MPI_PREFIX ./solver > log", ranks=8,
                prepend_prefix=False)

The value is a ShellResult, as for a ShellFunction: the exit code of the
whole command (mpirun's, unless the template says otherwise) and the tails
of stdout and stderr, which hold every rank's output. Past the walltime
the command is stopped and returns 124.

Only single-node launches are supported: the ranks all run on the one
worker that the task lands on. nodes > 1 raises NotImplementedError.
"""

import shlex

from .shell import ShellFunction

# The variables that hold the launcher prefix in the command's environment.
PREFIX_VARIABLES = ("XYLEM_MPI_PREFIX", "PARSL_MPI_PREFIX")
# Open MPI refuses to start as root unless both are set; they are set only
# when the command runs as root (checked where it runs, on the worker).
ROOT_VARIABLES = ("OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")


def _count(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, not {value!r}")
    return value


class MPIFunction(ShellFunction):
    """A shell command template run under mpirun; see the module's
    description.

    ranks: MPI processes, and cores asked for (default: ranks_per_node,
      else 1).
    nodes: must be 1; multi-node launches are not yet supported.
    ranks_per_node: on one node, the same as ranks (Globus Compute's
      resource_specification names).
    walltime, tail: as for ShellFunction.
    prepend_prefix: True: the command is ``$XYLEM_MPI_PREFIX template``,
      as in Globus Compute; False: the template runs as written and puts
      $XYLEM_MPI_PREFIX (or $PARSL_MPI_PREFIX) where it needs it.
    launcher: the program and options before ``-np N``, a str (split as
      the shell would) or a sequence of words; default ``mpirun``.
    launcher_options: words after ``-np N``; default ``--oversubscribe``,
      so that Open MPI starts as many ranks as the task has cores, however
      many cores it thinks the machine has.
    """

    def __init__(self, template, *, ranks=None, nodes=1, ranks_per_node=None,
                 walltime=None, tail=16384, prepend_prefix=True,
                 launcher="mpirun", launcher_options=("--oversubscribe",)):
        super().__init__(template, walltime=walltime, tail=tail)
        ranks = _count("ranks", ranks)
        nodes = _count("nodes", nodes) or 1
        ranks_per_node = _count("ranks_per_node", ranks_per_node)
        if nodes > 1:
            raise NotImplementedError(
                f"MPIFunction: nodes={nodes}: multi-node MPI launches are not"
                f" yet supported; an MPI task runs all its ranks on one"
                f" worker (nodes=1, ranks up to that worker's cores), since a"
                f" launch over several nodes needs a hostfile built from"
                f" several workers, which Xylem does not allocate together")
        # One node: ranks and ranks_per_node are the same number.
        if ranks is None:
            ranks = ranks_per_node or 1
        if ranks_per_node is None:
            ranks_per_node = ranks
        if ranks_per_node != ranks:
            raise ValueError(f"ranks_per_node={ranks_per_node} on one node"
                             f" must equal ranks={ranks}")
        if isinstance(launcher, str):
            launcher = shlex.split(launcher)
        launcher = [str(w) for w in launcher]
        if not launcher:
            raise ValueError("the launcher must name a program")
        self.ranks = ranks
        self.nodes = nodes
        self.ranks_per_node = ranks_per_node
        self.launcher = launcher
        self.launcher_options = [str(w) for w in launcher_options]
        self.prepend_prefix = bool(prepend_prefix)
        self.__name__ = "mpi:" + self.__name__

    # The executor asks the manager for this many cores (on one worker).
    @property
    def cores(self):
        return self.ranks

    def __repr__(self):
        return f"xylem.MPIFunction({self.template!r}, ranks={self.ranks}," \
               f" walltime={self.walltime!r})"

    def prefix(self):
        """The launcher prefix: ``mpirun -np RANKS --oversubscribe``."""
        words = self.launcher + ["-np", str(self.ranks)] + \
            self.launcher_options
        return " ".join(shlex.quote(w) for w in words)

    def format(self, *args, **kwargs):
        """The sh script for these arguments: it sets the environment
        (the prefix variables; Open MPI's consent to run as root, when
        the script runs as root), then runs the formatted template, after
        $XYLEM_MPI_PREFIX if prepend_prefix.

        It traps SIGTERM, so that at the walltime, when timeout(1)
        signals the whole process group, the shell outlives mpirun: mpirun
        puts each rank in a process group of its own and stops them
        itself, and the shell, once the command it waits for has ended,
        exits 143. The task so ends when mpirun has, not before (or at the
        SIGKILL 2 s later). Programs the template starts get the default
        SIGTERM back, as for any trap."""
        command = super().format(*args, **kwargs)
        if self.prepend_prefix:
            command = f"$XYLEM_MPI_PREFIX {command}"
        p = shlex.quote(self.prefix())
        lines = [f"{v}={p}; export {v}" for v in PREFIX_VARIABLES]
        lines.append('if [ "$(id -u)" = 0 ]; then '
                     + " ".join(f"{v}=1;" for v in ROOT_VARIABLES)
                     + " export " + " ".join(ROOT_VARIABLES) + "; fi")
        lines.append("trap 'exit 143' TERM")
        return "\n".join(lines) + "\n" + command
