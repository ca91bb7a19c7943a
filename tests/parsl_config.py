"""A Parsl configuration with Xylem as the executor, for Parsl's own test
suite (docs/python.md, "Parsl"):

    XYLEM_BUILD_DIR=$PWD/build PYTHONPATH=$PWD/python \\
        python3 -m pytest "$(python3 -c 'import parsl, os; print(os.path.dirname(parsl.__file__))')/tests" \\
        -k "not cleannet" --config tests/parsl_config.py

The suite loads this file by path and calls fresh_config() once per
session (or per test module that asks for a fresh DataFlowKernel).
XYLEM_PARSL_SHARED_FS=1 runs it with shared_fs=True (Files passed as they
are, not staged).
"""

import os

from parsl.config import Config

from xylem.parsl import XylemExecutor


def fresh_config():
    return Config(
        executors=[XylemExecutor(
            label="xylem",
            workers=max(2, min(8, os.cpu_count() or 1)),
            shared_fs=os.environ.get("XYLEM_PARSL_SHARED_FS") == "1",
        )],
        # Parsl retries at the DataFlowKernel; Xylem itself retries only
        # tasks whose worker was lost.
        retries=0,
        strategy="none",
    )
