"""xylem.cwl.CWLApp: a CWL CommandLineTool, Workflow or ExpressionTool
as a Python callable (docs/cwl.md, "From Python and Parsl").

    app = CWLApp("sort.cwl", executor=ex)
    out = app(input_file="data.txt", reverse=True).result()
    out["sorted"]            # a path under the app's outdir

The tool and the job are loaded and checked by the C runner (`xylem cwl
--prepare`), so a tool behaves as `xylem cwl` runs it. The call is one
command task, `$XYLEM_EXE cwl-exec`, whose File and Directory inputs are
declared data, staged to the worker; its output directory comes back to a
fresh directory under ``outdir``, and the Future's result is the output
object with every File and Directory replaced by its path.

A Workflow (or an ExpressionTool) is run whole by the C runner, `xylem
cwl --manager`, against the executor's own manager: each of its
CommandLineTool steps is a task on the executor's workers, intermediate
files pass between them, and the Future's result is the workflow's
output object, paths under a fresh directory in ``outdir``.

Under Parsl, ``app.parsl_app()`` gives a function that the DataFlowKernel
runs on ``xylem.parsl.XylemExecutor``; its Parsl File arguments and its
output directory are the task's data needs (see that method).
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future

from .errors import TaskFailed
from .files import File
from .workers import find_xylem

__all__ = ["CWLApp", "CWLError"]

JOB_FILE = "cwl-job.json"
STATUS = {1: "permanentFail", 33: "unsupported feature", 75: "temporaryFail"}


class CWLError(Exception):
    """The tool could not be loaded, or its run failed. ``status`` is the
    runner's exit status (1 permanentFail, 33 unsupported, 75
    temporaryFail) and ``stderr`` what it said."""

    def __init__(self, message, status=1, stderr=""):
        super().__init__(message)
        self.status = status
        self.stderr = stderr


def _path_class(t):
    """"File" or "Directory" when a plain string given for an input of
    CWL type t names a path (t is File or Directory, perhaps optional),
    else None."""
    if isinstance(t, str):
        return t if t in ("File", "Directory") else None
    if isinstance(t, list):
        classes = {_path_class(x) for x in t if x != "null"}
        if "string" in t or len(classes) != 1:
            return None  # a string is a string there, or it is unclear
        return classes.pop()
    return None


def _item_type(t):
    """The type of an array's items, for t an array type (or an optional
    one), else None."""
    if isinstance(t, list):
        arrays = [x for x in t if isinstance(x, dict)]
        t = arrays[0] if len(arrays) == 1 else None
    if isinstance(t, dict) and t.get("type") == "array":
        return t.get("items")
    return None


def _absolute(obj):
    """A File or Directory object with a relative path or location made
    absolute against the current directory, as cwltool reads a job given
    on its command line (the runner would read it against the job file's
    own directory, a temporary one)."""
    obj = dict(obj)
    for key in ("path", "location"):
        v = obj.get(key)
        if isinstance(v, str) and "://" not in v and not os.path.isabs(v):
            obj[key] = os.path.abspath(v)
    for key in ("secondaryFiles", "listing"):
        if isinstance(obj.get(key), list):
            obj[key] = [_job_value(x) for x in obj[key]]
    return obj


def _job_value(v, t=None):
    """A Python argument for an input of CWL type t as a CWL job value:
    paths (relative to the current directory, as a shell user types
    them) and xylem.Files become File objects (or Directory objects), and
    File objects with relative paths get absolute ones. Without a type
    that says File or Directory, only an absolute path that exists is
    taken for one."""
    if isinstance(v, File):
        v = v.path
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if hasattr(v, "filepath") and hasattr(v, "scheme"):  # a Parsl File
        v = v.filepath
    cls = _path_class(t)
    if isinstance(v, str) and (cls or (os.path.isabs(v) and
                                       os.path.exists(v))):
        path = os.path.abspath(v)
        if cls is None:
            cls = "Directory" if os.path.isdir(path) else "File"
        return {"class": cls, "path": path}
    if isinstance(v, (list, tuple)):
        return [_job_value(x, _item_type(t)) for x in v]
    if isinstance(v, dict):
        if v.get("class") in ("File", "Directory"):
            return _absolute(v)
        return {k: _job_value(x) for k, x in v.items()}
    return v


def _as_paths(v):
    """The output object with every File and Directory as its path."""
    if isinstance(v, dict):
        if v.get("class") in ("File", "Directory"):
            return v.get("path")
        return {k: _as_paths(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_as_paths(x) for x in v]
    return v


def _run_in_sandbox(doc, names, dst, inputs=(), outputs=()):
    """On the worker, in the call's sandbox: links each staged input at the
    name the job document expects, runs `$XYLEM_EXE cwl-exec`, and leaves
    the tool's output directory at outputs[0]. Returns the output object
    with paths under dst, where that directory arrives."""
    import json as _json
    import os as _os
    import subprocess as _subprocess
    for name, f in zip(names, inputs):
        _os.makedirs(_os.path.dirname(name), exist_ok=True)
        if not _os.path.lexists(name):
            _os.symlink(_os.path.abspath(f.filepath), name)
    with open("cwl-job.json", "w") as f:
        f.write(doc)
    r = _subprocess.run([_os.environ["XYLEM_EXE"], "cwl-exec",
                         "cwl-job.json"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cwl-exec exited {r.returncode}: {r.stderr}")
    with open("cwl-result.json") as f:
        result = _json.load(f)
    _os.rename("out", outputs[0].filepath)

    def absolute(v):
        if isinstance(v, dict):
            if v.get("class") in ("File", "Directory"):
                return _os.path.join(dst, v["path"])
            return {k: absolute(x) for k, x in v.items()}
        if isinstance(v, list):
            return [absolute(x) for x in v]
        return v
    return absolute(result)


class CWLApp:
    """A CommandLineTool, Workflow or ExpressionTool, loaded and checked
    now. Call it with keyword arguments named after its inputs (paths or
    xylem.File for File and Directory inputs); it returns a Future of the
    output object. ``executor`` is a xylem.Executor (default: one made on
    first call); ``outdir`` holds a fresh directory per call (default:
    the current directory). A tool is one task; a workflow is run by
    `xylem cwl` against the executor's manager, each of its tool steps a
    task on the executor's workers (``self.cls`` says which)."""

    def __init__(self, tool, executor=None, outdir=None):
        self.tool = os.path.abspath(os.fspath(tool))
        self.outdir = os.path.abspath(outdir or os.getcwd())
        self._executor = executor
        self._own = None
        doc = json.loads(self._xylem("--print-tool", self.tool))
        self.cls = doc.get("class", "CommandLineTool")
        self.inputs = [p["id"] for p in doc.get("inputs", [])]
        self._types = {p["id"]: p.get("type")
                       for p in doc.get("inputs", [])}
        self.outputs = [p["id"] for p in doc.get("outputs", [])]

    def __repr__(self):
        return f"CWLApp({self.tool!r})"

    @staticmethod
    def _xylem(*args):
        r = subprocess.run([find_xylem(), "cwl", *args], capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise CWLError(r.stderr.strip() or f"xylem cwl exited"
                           f" {r.returncode}", r.returncode, r.stderr)
        return r.stdout

    def prepare(self, kwargs, scratch):
        """The task's job document and the inputs to stage, from the C
        runner: {"doc": ..., "inputs": [[path, sandbox name], ...]}.
        File and Directory literals are written under scratch, which the
        caller keeps until the task has staged them."""
        job = self._job(kwargs)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(job, f)
            f.flush()
            return json.loads(self._xylem("--prepare", "--scratch", scratch,
                                          self.tool, f.name))

    def _job(self, kwargs):
        """The job object for a call, its arguments checked by name."""
        unknown = sorted(set(kwargs) - set(self.inputs))
        if unknown:
            raise TypeError(f"{os.path.basename(self.tool)} has no input"
                            f" {', '.join(unknown)} (its inputs:"
                            f" {', '.join(self.inputs) or 'none'})")
        return {k: _job_value(v, self._types.get(k))
                for k, v in kwargs.items()}

    def __call__(self, **kwargs):
        ex = self._executor
        if ex is None:
            if self._own is None:
                from .executor import Executor
                self._own = Executor()
            ex = self._own
        if self.cls != "CommandLineTool":
            return self._run_whole(ex, kwargs)
        return ex.submit(self, **kwargs)

    def _run_whole(self, ex, kwargs):
        """A Workflow or ExpressionTool: `xylem cwl --manager` against
        ex's manager, in a thread of its own; a Future of its outputs."""
        fut = Future()
        fut.set_running_or_notify_cancel()
        if not hasattr(ex, "port") or not hasattr(ex, "secret_file"):
            fut.set_exception(CWLError(
                f"{os.path.basename(self.tool)}: a {self.cls} runs on an"
                " executor with a manager in this process (xylem.Executor),"
                f" not on {type(ex).__name__}", 33))
            return fut
        try:  # a bad argument fails the Future, as for a tool
            job = self._job(kwargs)
            os.makedirs(self.outdir, exist_ok=True)
            dst = tempfile.mkdtemp(prefix="cwl-", dir=self.outdir)
            fd, job_path = tempfile.mkstemp(prefix="xylem-cwl-job-",
                                            suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(job, f)
        except (TypeError, OSError) as e:
            fut.set_exception(e)
            return fut
        cmd = [find_xylem(), "cwl", "--quiet", "--outdir", dst,
               "--manager", f"127.0.0.1:{ex.port}",
               "--secret-file", ex.secret_file]
        cmd += ["--tls-ca", ex.tls_ca] if ex.tls_ca else ["--no-tls"]
        cmd += [self.tool, job_path]
        name = os.path.basename(self.tool)

        def run():
            try:
                r = subprocess.run(cmd, capture_output=True, text=True)
            except OSError as e:
                fut.set_exception(CWLError(f"{name}: {e}"))
                return
            finally:
                try:
                    os.unlink(job_path)
                except OSError:
                    pass
            if r.returncode != 0:
                what = STATUS.get(r.returncode, f"exit {r.returncode}")
                fut.set_exception(CWLError(
                    f"{name}: {what}\n{r.stderr}".rstrip(),
                    r.returncode if r.returncode > 0 else 1, r.stderr))
                return
            try:
                fut.set_result(_as_paths(json.loads(r.stdout)))
            except ValueError as e:
                fut.set_exception(CWLError(f"{name}: its output object"
                                           f" could not be read: {e}",
                                           1, r.stderr))
        threading.Thread(target=run, name=f"xylem-cwl {name}",
                         daemon=True).start()
        return fut

    # The executor's side (executor.py): the task, then its result.

    def task_spec(self, manager, kwargs):
        """The command task for one call, and the directory its outputs
        come back to. manager declares buffers and files."""
        os.makedirs(self.outdir, exist_ok=True)
        back = tempfile.mkdtemp(prefix=".xylem-cwl-", dir=self.outdir)
        try:
            prepared = self.prepare(kwargs, os.path.join(back, "literals"))
        except BaseException:
            shutil.rmtree(back, ignore_errors=True)
            raise
        doc = json.dumps(prepared["doc"]).encode()
        inputs = [(manager.declare_buffer(doc, "task"), JOB_FILE)]
        inputs += [(manager.declare_file(p, "workflow"), name)
                   for p, name in prepared["inputs"]]
        outputs = [(manager.declare_file(os.path.join(back, name), "task"),
                    name) for name in prepared["outputs"]]
        # The job document and the outputs are this call's alone: given
        # back once it is submitted (the manager keeps them meanwhile).
        spec = {"command": prepared["command"], "inputs": inputs,
                "outputs": outputs, "cores": prepared["cores"],
                "release": [inputs[0][0]] + [h for h, _ in outputs]}
        return spec, back

    def finish(self, back, ok, exit_code, output, error):
        """The output object of a finished call, or the CWLError."""
        try:
            if not ok:
                text = output.decode(errors="replace") if output else ""
                what = STATUS.get(exit_code, error or f"exit {exit_code}")
                return "err", CWLError(f"{os.path.basename(self.tool)}:"
                                       f" {what}\n{text}".rstrip(),
                                       exit_code if exit_code > 0 else 1,
                                       text)
            dst = tempfile.mkdtemp(prefix="cwl-", dir=self.outdir)
            result = json.loads(self._xylem("--deliver", back, "--outdir",
                                            dst, self.tool))
            return "ok", _as_paths(result)
        except (OSError, ValueError, CWLError) as e:
            return "err", TaskFailed(f"the tool's outputs could not be"
                                     f" collected: {e}", "", exit_code, "")
        finally:
            shutil.rmtree(back, ignore_errors=True)

    def parsl_app(self, executors="all"):
        """This tool as a Parsl app for xylem.parsl.XylemExecutor. Call the
        result with the tool's inputs as keyword arguments (Parsl Files,
        paths, or AppFutures' DataFutures); it returns Parsl's AppFuture
        of the output object, paths absolute under a fresh directory in
        ``outdir``. The job is prepared here, by the C runner; the Files
        become the task's inputs, and that directory its one output, so
        the executor stages both like any Parsl data."""
        if self.cls != "CommandLineTool":
            raise CWLError(f"{os.path.basename(self.tool)}: a {self.cls}"
                           " has no Parsl app (call the CWLApp itself)", 33)
        import parsl
        from parsl.data_provider.files import File as ParslFile

        remote = parsl.python_app(_run_in_sandbox, executors=executors)

        def call(**kwargs):
            files = {}

            def collect(v):
                if hasattr(v, "filepath") and hasattr(v, "scheme"):
                    files[os.path.abspath(v.filepath)] = v
                elif isinstance(v, (list, tuple)):
                    for x in v:
                        collect(x)
                elif isinstance(v, dict):
                    for x in v.values():
                        collect(x)
            collect(list(kwargs.values()))
            os.makedirs(self.outdir, exist_ok=True)
            dst = tempfile.mkdtemp(prefix="cwl-", dir=self.outdir)
            # Literals live beside the outputs-to-be, for as long as they.
            prepared = self.prepare(kwargs, dst + ".literals")
            os.rmdir(dst)  # the task's output directory comes back here
            names, inputs = [], []
            for path, name in prepared["inputs"]:
                names.append(name)
                inputs.append(files.get(path) or ParslFile(path))
            return remote(json.dumps(prepared["doc"]), names, dst,
                          inputs=inputs, outputs=[ParslFile(dst)])
        call.__name__ = os.path.splitext(os.path.basename(self.tool))[0]
        return call

    def close(self):
        """Shuts down the executor this app made for itself, if any."""
        if self._own is not None:
            self._own.shutdown()
            self._own = None
