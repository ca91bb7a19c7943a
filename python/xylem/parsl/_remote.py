"""The worker side of a Parsl task run by XylemExecutor: runs in a warm
library instance, with the call's sandbox as working directory.

The executor has already rewritten the task's Parsl Files (their
local_path is their sandbox name) and its stdout and stderr (sandbox
names, append mode). This module only prepares the outputs' directories,
calls the app, and makes an empty placeholder for each declared output
that the app did not create, so that the task as a whole succeeds and its
value (often a RemoteExceptionWrapper) comes back; the executor removes
the placeholders on its side. Kept small, and free of imports of the
executor, so that a library instance loads little.
"""

import os
import sys


def run(func, outputs, args, kwargs):
    """Calls func(*args, **kwargs) and returns (value, missing), missing
    being the names in outputs that the call did not create."""
    for name in outputs:
        d = os.path.dirname(name)
        if d:
            os.makedirs(d, exist_ok=True)
    try:
        value = func(*args, **kwargs)
    except Exception:
        # Parsl's apps wrap their errors already (wrap_error); this is for
        # a bare function handed to the executor directly.
        from parsl.app.errors import RemoteExceptionWrapper
        value = RemoteExceptionWrapper(*sys.exc_info())
    missing = []
    for name in outputs:
        if not os.path.lexists(name):
            open(name, "wb").close()
            missing.append(name)
    return value, missing
