"""Fixtures for Xylem's system tests. They start the real `xylem` binary
(env XYLEM_BIN, else build/src/cli/xylem): as `xylem run` with local
workers, or as a standalone manager (`xylem run --workers 0`) with `xylem
worker` processes that the test starts. Every wait has a timeout, and every
process a test starts is stopped when the test ends."""

import re
import secrets
import subprocess
import sys

import pytest

from helpers import Xylem, find_binary, wait_for


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


@pytest.fixture
def origin(tmp_path):
    """A plain HTTP server on loopback serving tmp_path/www; its log (one
    line per request) is tmp_path/http.log."""
    www = tmp_path / "www"
    www.mkdir()
    log = open(tmp_path / "http.log", "w")
    p = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0",
                          "--bind", "127.0.0.1", "--directory", str(www)],
                         stdout=log, stderr=subprocess.STDOUT)
    port = wait_for(lambda: re.search(
        r"port (\d+)", (tmp_path / "http.log").read_text()), 10,
        what="the HTTP server").group(1)
    yield www, f"http://127.0.0.1:{port}", tmp_path / "http.log"
    p.terminate()
    p.wait(10)
    log.close()
