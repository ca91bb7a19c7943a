"""xylem.progress in a real Jupyter kernel (ipykernel, driven by nbclient
as a notebook front end would be): the cell's output is one display that
the kernel updates in place (display_id), ending at "N/N done" with an
HTML progress bar; nothing is written to the cell's stderr as a terminal
line would be."""

import os

import nbclient
import nbformat

from conftest import TIMEOUT

CELL = """
import time, xylem

def slow(i):
    time.sleep(0.2)
    return i

with xylem.Executor(workers=2) as ex:
    futures = [ex.submit(slow, i) for i in range(6)]
    xylem.progress(futures, desc="slow calls")
    print("results", sorted(f.result() for f in futures))
"""


def test_progress_in_a_real_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    # ipykernel's own "python3" kernel is this interpreter (the test
    # venv's python), started with this process's environment: the
    # package and the build directory it finds the workers in.
    client = nbclient.NotebookClient(
        nb, timeout=TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=dict(os.environ))
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    streams = {o.name: o.text for o in outputs if o.output_type == "stream"}
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    # One display, updated in place: nbclient applies each
    # update_display_data to the output of the same display_id.
    assert len(displays) == 1, outputs
    html = displays[0].data["text/html"]
    assert "<progress" in html and "6/6 done" in html, html
    assert "slow calls" in html, html
    assert "results [0, 1, 2, 3, 4, 5]" in streams.get("stdout", "")
    # No terminal line (carriage returns, the "progress:" log line).
    assert "\r" not in streams.get("stderr", "")
    assert "progress:" not in streams.get("stderr", "")
