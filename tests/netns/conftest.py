"""Fixtures for the namespace cluster's tests (docs/netns.md). Each test
makes its own Cluster and removes it; tests skip when this machine cannot
make network namespaces (not root, no iproute2)."""

import secrets

import pytest

import cluster


@pytest.fixture
def netns():
    """Skips the test unless namespaces can be made here."""
    cluster.skip_unless_available()


@pytest.fixture(scope="session")
def xylem_bin():
    path = cluster.xylem_binary()
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
