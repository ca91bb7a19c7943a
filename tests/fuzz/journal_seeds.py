"""Writes the format-2 seeds of the journal's fuzz target
(tests/fuzz/fuzz_journal.c) into tests/fuzz/corpus/journal:
python3 tests/fuzz/journal_seeds.py tests/fuzz/corpus/journal"""
import os
import struct
import sys


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


class Log:
    def __init__(self):
        self.out, self.seq, self.flush = b"", 0, []

    def rec(self, typ, payload, epoch=1, magic=b"XYJ2"):
        self.seq += 1
        tail = struct.pack("<HHIQ", typ, 0, epoch, self.seq)
        crc = crc32c(payload, crc32c(tail))
        r = magic + struct.pack("<II", len(payload), crc) + tail + payload
        self.flush.append(r)
        return r

    def commit(self, epoch=1, flags=1):
        recs, self.flush = self.flush, []
        body = b"".join(recs)
        crcs = 0
        for r in recs:
            crcs = crc32c(r[8:12], crcs)
        first = self.seq - len(recs) + 1
        c = self.rec(0xFFFE, struct.pack("<QIIQI", first, len(recs), crcs,
                                         len(body), flags), epoch)
        self.flush = []
        self.out += body + c


def done(fp_byte, size, mtime):
    return bytes([fp_byte]) * 32 + b"\0" + struct.pack("<Iqq", 1, size,
                                                       mtime)


def done_temps(fp_byte, obj_byte, size, worker):
    w = worker.encode()
    return (bytes([fp_byte]) * 32 + b"\0" + struct.pack("<I", 1) + b"\1" +
            bytes([obj_byte]) * 32 + b"\0" + struct.pack("<Q", size) +
            struct.pack("<I", len(w)) + w)


def ctemp(session_byte, name, obj_byte=None, size=0, worker="w"):
    """A CTEMP record (type 15, client_temps.c): a session's temp named
    with its object and worker, or (no object) dropped."""
    n = name.encode()
    p = bytes([session_byte]) * 32
    if obj_byte is None:
        return p + b"\0" + struct.pack("<I", len(n)) + n
    w = worker.encode()
    return (p + b"\1" + struct.pack("<I", len(n)) + n + bytes([obj_byte]) * 32
            + b"\0" + struct.pack("<Q", size) + struct.pack("<I", len(w)) + w)


def main(d):
    log = Log()
    log.rec(0, b"")
    log.commit()
    log.rec(1, done(1, 6, 1700000000000000000))
    log.rec(1, done(2, 7, 1700000000000000001))
    log.commit()
    log.rec(4, done_temps(3, 9, 12, "worker-1"))
    log.commit()
    whole = log.out
    seeds = {"log2-flushes": whole}
    log.rec(1, done(5, 1, 1))
    log.rec(1, done(6, 1, 1))
    torn = log.out + b"".join(log.flush)  # no commit mark
    seeds["log2-torn-flush"] = torn
    log.commit()
    mid = bytearray(log.out)
    mid[len(whole) - 40] ^= 0x10  # inside the DONE_TEMPS flush
    seeds["log2-damaged-middle"] = bytes(mid)
    ct = Log()
    ct.rec(0, b"")
    ct.commit()
    ct.rec(15, ctemp(7, "/w/t1", 9, 12, "worker-1"))
    ct.rec(15, ctemp(7, "/w/t2", 10, 3))
    ct.rec(15, ctemp(7, "/w/t1"))
    ct.commit()
    seeds["log2-client-temps"] = ct.out
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"\0" + data)
    with open(os.path.join(d, "done-temps"), "wb") as f:
        f.write(b"\1\3" + done_temps(4, 8, 5, "w"))


if __name__ == "__main__":
    main(sys.argv[1])
