"""What the namespace-cluster benchmarks share (broadcast.py,
parsl_workflow.py): the links' options, random inputs, their ids, and the
HTTP server their baselines fetch from. Import it with tests/netns on
sys.path (it reads the cluster's limits)."""

import argparse
import hashlib
import os
import secrets

import cluster

CHUNK = 1 << 20


def add_link_args(ap):
    """--rate and --mtu: every link's cap and frame size. Jumbo frames
    (9000, as on most HPC Ethernet) by default: with 1500-byte frames the
    emulated network's per-frame work in the kernel, not the links, is
    what limits a 2-core machine once 8 or more links are busy both ways
    (docs/netns.md, "What one machine can carry")."""
    ap.add_argument("--rate", default="200mbit", type=_rate,
                    help="every link's cap, tc syntax (200mbit)")
    ap.add_argument("--mtu", type=_mtu, default=9000,
                    help="every link's MTU (9000; 1500 for standard frames)")


def _rate(text):
    """--rate: tc's syntax, checked as the cluster will read it."""
    try:
        cluster.rate_bits(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _mtu(text):
    """--mtu: an integer in the range the cluster takes."""
    try:
        mtu = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") \
            from None
    if not cluster.MTU_MIN <= mtu <= cluster.MTU_MAX:
        raise argparse.ArgumentTypeError(
            f"{mtu}: from {cluster.MTU_MIN} to {cluster.MTU_MAX}")
    return mtu

# http.server, with file bodies sent by sendfile(2) rather than copied
# through Python, so that the baseline's server is not what limits it.
# Run as `python3 -c HTTP_SERVER ADDR PORT ROOT`; it prints "Serving HTTP"
# when it listens.
HTTP_SERVER = """
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, src, dst):
        dst.flush()
        self.connection.sendfile(src)
    def log_message(self, *a):
        pass
addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = http.server.ThreadingHTTPServer((addr, port),
                                    functools.partial(H, directory=root))
print("Serving HTTP", flush=True)
s.serve_forever()
"""


def write_random(path, size):
    """Writes size random bytes to path."""
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(os.urandom(min(CHUNK, left)))
            left -= CHUNK


def sha256_file(path):
    """An object's id: the SHA-256 of its content, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                return h.hexdigest()
            h.update(b)


def run_xylem(c, run_dir, n_workers, cores, timeout, env=None):
    """`xylem run run_dir/wf.json --workers 0` on the cluster's manager
    host and one `xylem worker --cores cores` on each of the first
    n_workers worker hosts, with a fresh secret; waits for the run to end
    and returns its history database. Every worker is started before any
    is waited for: started one by one, the last would join a second or
    more after the first dispatch at N = 8, which a timed span would
    count against the transfer."""
    secret = run_dir / "secret"
    secret.write_text(secrets.token_hex(32) + "\n")
    secret.chmod(0o600)
    db = run_dir / "run.db"
    mgr, _ = c.start_manager(run_dir / "wf.json", secret, "--history", db,
                             "--quiet", cwd=run_dir, env=env)
    workers = [c.start_worker(i, secret, cores=cores, wait=False, env=env)
               for i in range(n_workers)]
    for w in workers:
        w.wait_line(r"connected to ", 30)
    rc = mgr.wait(timeout)
    for w in workers:
        w.wait(30)
    if rc != 0:
        raise cluster.ClusterError(f"xylem run: exit {rc}:\n{mgr.output}")
    return db
