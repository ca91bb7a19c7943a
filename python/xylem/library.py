"""A warm library instance: ``python -m xylem.library``, started by a
worker from the template that the executor declared (docs/python.md,
"Warm functions"; the channel is docs/protocol.md, "Library instances").

Importing the xylem package first checks that this is the Python version
the manager asked for (xylem/__init__.py). The library then says hello on
file descriptor 3 and serves one call at a time: each call
frame carries a task id, the call's sandbox and a payload (_calls.py),
and usually arrives whole, taken in one read with its length.
The call runs with the sandbox as its working directory; the reply frame
carries the task id and the pickled value or exception. Functions are
unpickled once per distinct function and kept, so their modules load once
per instance. What the user's code prints goes to stdout and stderr, which
the worker keeps as the instance's log; the protocol has a descriptor of
its own.
"""

import os
import struct
import sys

from xylem import _calls

HELLO = b"XYLIB1"
CHANNEL_FD = 3
# A call frame is a payload (at most 8 MiB), a sandbox path and a task id.
FRAME_MAX = (8 << 20) + 64 * 1024


class ChannelClosed(Exception):
    pass


class Reader:
    """Frames from the channel, read in as few system calls as the
    socket allows: a call frame usually arrives whole, and one read then
    takes it (its length and its bytes together)."""

    CHUNK = 1 << 16

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def _fill(self, want):
        """Reads until the buffer holds at least want bytes."""
        while len(self.buf) < want:
            data = os.read(self.fd, max(self.CHUNK, want - len(self.buf)))
            if not data:
                raise ChannelClosed()
            self.buf += data

    def frame(self):
        self._fill(4)
        (n,) = struct.unpack_from("<I", self.buf, 0)
        if n > FRAME_MAX:
            sys.stderr.write("xylem library: frame of %d bytes from the"
                             " worker exceeds %d\n" % (n, FRAME_MAX))
            sys.exit(2)
        self._fill(4 + n)
        with memoryview(self.buf) as view:
            frame = bytes(view[4:4 + n])
        del self.buf[:4 + n]
        return frame


def write_frame(fd, *parts):
    data = b"".join([struct.pack("<I", sum(len(p) for p in parts))]
                    + list(parts))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def parse_call(frame):
    """(task_id, sandbox, payload) from a call frame. A frame too short
    for its own fields means the worker and this library disagree on the
    protocol: nothing sensible can follow, so the library says why and
    exits, and the worker fails the call with this line."""
    if len(frame) < 12:
        sys.stderr.write("xylem library: call frame of %d bytes is too "
                         "short\n" % len(frame))
        sys.exit(2)
    (task_id, n) = struct.unpack_from("<QI", frame, 0)
    if 12 + n > len(frame):
        sys.stderr.write("xylem library: call frame names a %d-byte "
                         "sandbox path in %d bytes\n" % (n, len(frame)))
        sys.exit(2)
    sandbox = bytes(frame[12:12 + n]).decode("utf-8", "surrogateescape")
    return task_id, sandbox, memoryview(frame)[12 + n:]


def serve(fd):
    home = os.getcwd()
    cache = _calls.FunctionCache()
    reader = Reader(fd)
    while True:
        try:
            frame = reader.frame()
        except ChannelClosed:
            return 0  # the worker closed the channel: its way of saying bye
        task_id, sandbox, payload = parse_call(frame)
        try:
            os.chdir(sandbox)
            reply = _calls.run_call(payload, cache)
        except OSError as e:
            reply = _calls.error_reply(e)
        finally:
            os.chdir(home)
        # Anything the call printed reaches the log before the reply does,
        # and then the mark that ends its part (_calls.CALL_MARK), written
        # just before the reply so that the worker reads both at once.
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.write(1, _calls.CALL_MARK)
        except OSError:
            pass  # the call closed its stdout: no log to mark
        write_frame(fd, struct.pack("<Q", task_id), reply)


def main():
    try:
        # A private copy that child processes do not inherit; fd 3 itself
        # is then free for the user's code to reuse.
        fd = os.dup(CHANNEL_FD)
        os.close(CHANNEL_FD)
    except OSError:
        sys.stderr.write("xylem library: no channel on descriptor 3; a"
                         " worker starts this program, not a user\n")
        return 2
    _calls._cloudpickle()  # fail before hello if it is missing
    write_frame(fd, HELLO)
    return serve(fd)


if __name__ == "__main__":
    sys.exit(main())
