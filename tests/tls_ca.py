"""A test CA for a whole pytest session (docs/security.md): every manager
started by the tests keeps its CA in one directory (XYLEM_TLS_DIR, read
by `xylem run` and `xylem manager`) and every worker and client verifies
it against the CA certificate there (XYLEM_TLS_CA), so that a test that
starts a worker before its manager, or several managers, needs nothing
more. Made with the openssl command; a test that sets its own keeps it."""

import atexit
import os
import shutil
import subprocess
import tempfile


def make_ca(directory, cn="xylem test CA", days=30):
    """A CA key and certificate (ca.key, ca.crt, 0600) in directory."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = os.path.join(directory, "ca.key")
    crt = os.path.join(directory, "ca.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
         "-subj", f"/CN={cn}", "-days", str(days),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True)
    os.chmod(key, 0o600)
    os.chmod(crt, 0o600)
    return crt


def setup():
    """Sets XYLEM_TLS_DIR and XYLEM_TLS_CA in os.environ, once."""
    if os.environ.get("XYLEM_TLS_DIR") or os.environ.get("XYLEM_NO_TLS"):
        return
    d = tempfile.mkdtemp(prefix="xylem-test-tls-")
    atexit.register(shutil.rmtree, d, True)
    os.environ["XYLEM_TLS_CA"] = make_ca(d)
    os.environ["XYLEM_TLS_DIR"] = d
