"""Fixtures for Xylem's system tests. They start the real `xylem` binary
(env XYLEM_BIN, else build/src/cli/xylem): as `xylem run` with local
workers, or as a standalone manager (`xylem run --workers 0`) with `xylem
worker` processes that the test starts. Every wait has a timeout, and every
process a test starts is stopped when the test ends."""

import os
import secrets

import pytest

from helpers import Xylem, find_binary


@pytest.fixture(scope="session")
def xylem_bin():
    path = find_binary()
    if not path:
        pytest.fail("no xylem binary: set XYLEM_BIN or build"
                    " build/src/cli/xylem")
    return path


@pytest.fixture
def secret_file(tmp_path):
    """A fresh shared secret, as a 0600 file."""
    path = tmp_path / "secret"
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def xylem(xylem_bin, tmp_path):
    """Starts xylem commands for the test; stops them afterwards."""
    x = Xylem(xylem_bin, tmp_path)
    yield x
    x.cleanup()
