"""The worker side of a Parsl task run by XylemExecutor: runs in a warm
library instance, with the call's sandbox as working directory, or with
shared_fs in the executor's working directory (and back in the sandbox
after the call, since the instance serves other calls).

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


def run(func, outputs, args, kwargs, cwd=None):
    """Calls func(*args, **kwargs), in the directory cwd if not None, and
    returns (value, missing), missing being the names in outputs that the
    call did not create."""
    if cwd is None:
        return _run(func, outputs, args, kwargs)
    sandbox = os.getcwd()
    _chdir(cwd)
    try:
        return _run(func, outputs, args, kwargs)
    finally:
        os.chdir(sandbox)


def _chdir(path):
    """Goes to path; if it cannot, the OSError also says why it must."""
    try:
        os.chdir(path)
    except OSError as e:
        e.strerror = (f"{e.strerror} (XylemExecutor(shared_fs=True) runs"
                      " apps in this directory: is this worker's"
                      " filesystem shared with the submitting side?)")
        raise


def _run(func, outputs, args, kwargs):
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
