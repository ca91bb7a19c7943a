"""The fresh-mode runner: ``python -m xylem.runner``, run as a command
task in the call's sandbox (docs/python.md, "Warm and fresh"). It reads
the call from xylem-call.pkl (an input), runs it, and writes the reply
(_calls.py) to xylem-result.pkl (an output that comes back to the
executor's temporary directory). A process per call: nothing is shared
with the calls before or after it.
"""

import os
import sys

from xylem import _calls


def main():
    with open(_calls.CALL_FILE, "rb") as f:
        payload = f.read()
    # Written under a temporary name first: a result file is either whole
    # or absent.
    reply = _calls.run_call(payload, _calls.FunctionCache(1), limit=None)
    part = _calls.RESULT_FILE + ".part"
    with open(part, "wb") as f:
        f.write(reply)
    os.rename(part, _calls.RESULT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
