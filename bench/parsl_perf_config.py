"""Parsl configurations for bench/parsl_perf.sh, one file for parsl-perf's
--config, picked by the environment variable XYLEM_PERF_EXECUTOR:

  xylem    xylem.parsl.XylemExecutor with 2 local one-core workers
  xylem_pool  xylem.parsl.XylemExecutor on Parsl's LocalProvider (at most 2
           one-core workers, started by Xylem's scaler as the calls need
           them: the cluster case, a pool, on this machine)
  htex     HighThroughputExecutor, 2 workers (max_workers_per_node=2) on a
           LocalProvider with one block
  threads  Parsl's ThreadPoolExecutor with 2 threads

Every one has 2 workers (or threads), no retries, and no scaling strategy.
Parsl's run directory is runinfo/ under the current directory (the script
runs parsl-perf in a temporary directory).
"""

import os

from parsl.config import Config

which = os.environ.get("XYLEM_PERF_EXECUTOR", "xylem")

if which == "xylem":
    from xylem.parsl import XylemExecutor
    executor = XylemExecutor(label="xylem", workers=2, cores_per_worker=1)
elif which == "xylem_pool":
    from parsl.providers import LocalProvider
    from xylem.parsl import XylemExecutor
    executor = XylemExecutor(
        label="xylem_pool", cores_per_worker=1, idle_timeout=60,
        provider=LocalProvider(init_blocks=0, min_blocks=0, max_blocks=2))
elif which == "htex":
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider
    executor = HighThroughputExecutor(
        label="htex", max_workers_per_node=2, cores_per_worker=1,
        address="127.0.0.1",
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))
elif which == "threads":
    from parsl.executors import ThreadPoolExecutor
    executor = ThreadPoolExecutor(label="threads", max_threads=2)
else:
    raise ValueError(f"XYLEM_PERF_EXECUTOR={which!r}: not xylem,"
                     " xylem_pool, htex or threads")

config = Config(executors=[executor], retries=0, strategy="none",
                usage_tracking=0)
