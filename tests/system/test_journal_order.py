"""The order of a finished task's effects with a journal, seen in the
manager's system calls (strace): the RELEASE that lets a worker drop an
output it reported goes out only after the write of the task's DONE
record (a manager killed between the two would otherwise find neither
the record nor the worker's copy); in `--journal-sync` mode each output
is synced (fdatasync) before it is renamed into place, and its directory
after, before the DONE record is written. docs/durability.md."""

import os
import re
import shutil
import struct
import subprocess

import pytest

from helpers import task, write_workflow

MAGIC = b"XYJ2"  # the journal's format 2 (docs/durability.md)
REC_DONE = 1


def trace_run(xylem_bin, tmp_path, sync):
    if not shutil.which("strace"):
        pytest.skip("no strace (scripts/deps.sh test installs it)")
    outs = [tmp_path / f"out{i}.txt" for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"echo value {i} > o.txt", outputs=[(o, "o.txt")])
        for i, o in enumerate(outs)])
    journal = tmp_path / "journal"
    trace = tmp_path / "trace"
    env = {"XYLEM_NO_TLS": "1", "TMPDIR": str(tmp_path),
           "PATH": "/usr/bin:/bin",
           # LeakSanitizer cannot run under ptrace (a sanitized build).
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") +
           ":detect_leaks=0"}
    args = ["strace", "-f", "-qq", "-s", "65536", "-xx", "-o", str(trace),
            "-e", "trace=openat,write,writev,sendmsg,sendto,fdatasync,fsync,"
            "rename,renameat,renameat2", xylem_bin, "run", wf, "--journal",
            str(journal), "--workers", "1", "--no-tls"]
    if sync:
        args.append("--journal-sync")
    r = subprocess.run(args, capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for i, o in enumerate(outs):
        assert o.read_text() == f"value {i}\n"
    return trace.read_text().splitlines(), outs, journal


LINE = re.compile(r"^(\d+) +(\w+)\((.*)\) += (-?\d+)")
RESUMED = re.compile(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$")


def joined(lines):
    """The trace's lines with each call cut by another thread's
    ("<unfinished ...>", "<... resumed>") made whole, at the index where
    it returned."""
    cut = {}
    out = []
    for line in lines:
        if line.endswith("<unfinished ...>"):
            pid = line.split(" ", 1)[0]
            cut[pid] = line[:-len("<unfinished ...>")].rstrip()
            out.append("")
            continue
        m = RESUMED.match(line)
        if m and m.group(1) in cut:
            line = cut.pop(m.group(1)) + m.group(2)
        out.append(line)
    return out


def data_of(args):
    """The bytes of a traced write's buffer ("\\x.." escapes)."""
    m = re.search(r'"((?:\\x[0-9a-f]{2})*)"', args)
    return bytes.fromhex(m.group(1).replace("\\x", "")) if m else b""


def has_done(buf):
    """1 if the journal bytes hold a DONE record."""
    i = 0
    while i + 28 <= len(buf):
        if buf[i:i + 4] != MAGIC:
            return False
        length, = struct.unpack_from("<I", buf, i + 4)
        typ, = struct.unpack_from("<H", buf, i + 12)
        if typ == REC_DONE:
            return True
        i += 28 + length
    return False


def events(lines, journal):
    """(kind, index) for: journal writes with a DONE record, RELEASE
    frames sent, output fds synced and renames, in the trace's order."""
    fds = {}  # (pid, fd) -> path
    ev = []
    for n, line in enumerate(joined(lines)):
        m = LINE.match(line)
        if not m:
            continue
        pid, call, args, ret = m.group(1), m.group(2), m.group(3), \
            int(m.group(4))
        if call == "openat" and ret >= 0:
            p = re.search(r'"((?:\\x[0-9a-f]{2})*)"', args)
            if p:
                fds[(pid, ret)] = bytes.fromhex(
                    p.group(1).replace("\\x", "")).decode(errors="replace")
        elif call in ("write", "sendto") and ret > 0:
            fd = int(args.split(",", 1)[0])
            path = fds.get((pid, fd), "")
            buf = data_of(args)
            if path in (f"{journal}/log", "log") and has_done(buf):
                ev.append(("done-write", n))
            # RELEASE: u32 length 32, u16 type 25, u16 flags 0.
            if b"\x20\x00\x00\x00\x19\x00\x00\x00" in buf:
                ev.append(("release", n))
        elif call in ("fdatasync", "fsync"):
            fd = int(args.split(",", 1)[0])
            ev.append(("sync", n, fds.get((pid, fd), "")))
        elif call.startswith("rename") and ret == 0:
            names = re.findall(r'"((?:\\x[0-9a-f]{2})*)"', args)
            names = [bytes.fromhex(x.replace("\\x", "")).decode(
                errors="replace") for x in names]
            ev.append(("rename", n, names))
    return ev


def test_release_follows_the_done_record(xylem_bin, tmp_path):
    lines, outs, journal = trace_run(xylem_bin, tmp_path, sync=False)
    ev = events(lines, journal)
    done = [e[1] for e in ev if e[0] == "done-write"]
    release = [e[1] for e in ev if e[0] == "release"]
    assert done and len(release) >= 3, (done, release)
    # Every RELEASE (one per output, three tasks) after the first write
    # of a DONE record; and as many RELEASEs after the last such write
    # as DONE records it carried at least one of.
    assert min(release) > min(done), (done, release)


def test_sync_mode_syncs_outputs_before_their_record(xylem_bin, tmp_path):
    lines, outs, journal = trace_run(xylem_bin, tmp_path, sync=True)
    ev = events(lines, journal)
    first_done = min(e[1] for e in ev if e[0] == "done-write")
    for o in outs:
        ren = [e for e in ev if e[0] == "rename" and len(e[2]) == 2 and
               e[2][1] == str(o)]
        assert ren, (o, [e for e in ev if e[0] == "rename"])
        tmp, at = ren[0][2][0], ren[0][1]
        synced = [e[1] for e in ev if e[0] == "sync" and e[2] == tmp]
        assert synced and min(synced) < at, (o, tmp)
        dirsync = [e[1] for e in ev if e[0] == "sync" and
                   e[2] == str(o.parent) and e[1] > at]
        assert dirsync, o
        assert at < first_done or min(dirsync) < max(
            e[1] for e in ev if e[0] == "done-write"), o


def test_a_new_journal_with_a_secret_file_keeps_its_ca(xylem, tmp_path,
                                                       secret_file):
    """`xylem run --journal NEW --secret-file S` with TLS and no CA given:
    the journal's directory is made for its CA (the secret file meant
    nothing had made it before; bench/restart_redone.py runs so)."""
    env = {k: v for k, v in xylem.env.items()
           if k not in ("XYLEM_TLS_DIR", "XYLEM_TLS_CA", "XYLEM_NO_TLS")}
    wf = write_workflow(tmp_path / "wf.json", [task("a", "true")])
    journal = tmp_path / "new-journal"
    r = xylem.run("run", wf, "--workers", "1", "--journal", journal,
                  "--secret-file", secret_file, env=env, timeout=60)
    assert r.returncode == 0, r.output
    assert (journal / "tls" / "ca.crt").exists()
