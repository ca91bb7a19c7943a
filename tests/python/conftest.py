"""Fixtures for the Python package's tests. They run real managers (the
extension xylem._core) and real `xylem worker` processes on this machine.

In a build directory (scripts/test.sh): XYLEM_BUILD_DIR=build and
PYTHONPATH=python, so that `import xylem` takes the sources from python/
and the extension and the xylem program from the build. Installed with
pip: no variables needed. Every Executor a test makes is shut down when
the test ends, and every wait has a timeout.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if os.environ.get("XYLEM_BUILD_DIR") and str(REPO / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "python"))

import xylem  # noqa: E402

# Under the sanitizers (XYLEM_SANITIZED, workers built with them) every
# wait stretches by this factor.
SLOW = 4 if os.environ.get("XYLEM_SANITIZED") else 1
TIMEOUT = 30 * SLOW


@pytest.fixture
def make_executor():
    """Makes Executors for the test and shuts each down afterwards."""
    made = []

    def make(*args, **kwargs):
        kwargs.setdefault("workers", 2)
        ex = xylem.Executor(*args, **kwargs)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def ex(make_executor):
    """An Executor with two local workers of one core each."""
    return make_executor()
