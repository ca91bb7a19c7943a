"""The live dashboard from Python (docs/observability.md): Executor(http=)
serves it from the executor's own manager, at dashboard_url, on loopback,
and its /metrics and /api/state count the executor's calls and commands,
failures with their errors included; without http= there is none."""

import json
import urllib.error
import urllib.request

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


def fetch(url, path):
    with urllib.request.urlopen(url + path.lstrip("/"), timeout=10) as r:
        return r.status, r.read().decode()


def test_executor_serves_dashboard(make_executor):
    parser = pytest.importorskip("prometheus_client.parser")
    ex = make_executor(http=0)
    url = ex.dashboard_url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    fs = [ex.submit(pyfuncs.add, i, i) for i in range(6)]
    assert [f.result(timeout=TIMEOUT) for f in fs] == [2 * i for i in range(6)]
    bad = ex.submit(pyfuncs.crash, 3, "no luck")
    with pytest.raises(Exception):
        bad.result(timeout=TIMEOUT)
    status, text = fetch(url, "/metrics")
    assert status == 200
    got = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("xylem_tasks", (("state", "succeeded"),))] == 6
    assert got[("xylem_tasks", (("state", "failed"),))] == 1
    assert got[("xylem_workers", (("state", "connected"),))] == 2
    status, body = fetch(url, "/api/state")
    state = json.loads(body)
    assert sum(t[4] for t in state["tags"]) == 6
    assert state["nfails"] == 1
    fail = state["fails"][0]
    assert "status 3" in fail["error"] and fail["worker"]
    status, page = fetch(url, "/")
    assert "<title>Xylem dashboard" in page


def test_no_dashboard_unless_asked(make_executor):
    ex = make_executor()
    assert ex.dashboard_url is None
