"""The live dashboard (docs/observability.md): opened in a real headless
Chromium during and after a real `xylem run`, its numbers held against
the run's own summary, every request the page makes checked to go to the
manager alone, and a screenshot kept in the test's directory; the event
stream resumed without a gap after a reconnection; /metrics read by
prometheus_client's parser; a dashboard on an address other than
loopback refusing whoever lacks its token."""

import http.client
import json
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from helpers import browser_missing, task, wait_for, write_workflow


def run_with_dashboard(xylem, tmp_path, tasks, *extra):
    wf = write_workflow(tmp_path / "wf.json", tasks)
    p = xylem.start("run", wf, "--workers", "2", "--http", "0",
                    "--http-linger", "120", *extra)
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    return p, url


def get(url, path, headers=None, ca=None):
    u = urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca)
        c = http.client.HTTPSConnection(u.hostname, u.port, timeout=10,
                                        context=ctx)
    else:
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def summary(p):
    m = p.wait_line(r"(\d+) tasks: (\d+) succeeded, (\d+) failed", 60)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def chrome():
    try:
        from selenium import webdriver
    except ImportError:
        browser_missing("selenium is not installed")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        browser_missing("chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1400,1200",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync",
              "--disable-default-apps"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    from selenium.webdriver.chrome.service import Service
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")),
                            options=opts)


def text(driver, id_):
    return driver.find_element("id", id_).text


def table(driver, id_):
    """A table's body rows, each a list of its cells' texts."""
    rows = driver.find_elements("css selector", f"#{id_} tbody tr")
    return [[td.text for td in r.find_elements("tag name", "td")]
            for r in rows]


def stream_drawn(driver):
    """The task stream's rows and bars drawn, and its coloured pixels."""
    c = driver.find_element("id", "stream")
    painted = driver.execute_script(
        "const c = document.getElementById('stream');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width,"
        " c.height).data; let n = 0;"
        "for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;")
    return (int(c.get_attribute("data-rows") or 0),
            int(c.get_attribute("data-bars") or 0), painted)


def test_dashboard_in_chromium(xylem, tmp_path):
    flag = tmp_path / "go"
    data = tmp_path / "in.bin"
    data.write_bytes(b"d" * 100000)
    tasks = [task(f"echo-{i}", f"echo {i}; wc -c < in",
                  inputs=[(data, "in")]) for i in range(28)]
    tasks += [task(f"echo-{i}", f"echo {i} > out",
                   outputs=[(tmp_path / f"out{i}", "out")])
              for i in range(28, 30)]
    tasks += [task(f"bad-{i}", f"echo oops-{i}; echo to-stderr >&2; exit 3")
              for i in range(2)]
    tasks.append(task("hold", f"while [ ! -e {flag} ]; do sleep 0.05;"
                      " done"))
    p, url = run_with_dashboard(xylem, tmp_path, tasks,
                                "--cores-per-worker", "2")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    driver = chrome()
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait_for(lambda: text(driver, "conn") == "live", 30,
                 what="the page to connect")
        # During the run: the held task shows as running, in its row.
        wait_for(lambda: text(driver, "n-running") == "1", 30,
                 what="the held task running on the page")
        assert "hold" in text(driver, "tags")
        # The task stream: a row per worker slot seen, the held task's
        # bar drawn in it.
        rows, bars, painted = wait_for(
            lambda: (lambda s: s if s[1] >= 1 else None)(
                stream_drawn(driver)), 30, what="the task stream's bars")
        assert rows >= 1 and painted > 0, (rows, bars, painted)
        driver.save_screenshot(str(tmp_path / "dashboard-running.png"))
        flag.touch()
        total, ok, failed = summary(p)
        assert (total, ok, failed) == (33, 31, 2)
        wait_for(lambda: text(driver, "n-succeeded") == str(ok), 30,
                 what="the page's succeeded count")
        assert text(driver, "n-failed") == str(failed)
        assert text(driver, "n-total") == str(total)
        assert text(driver, "n-running") == "0"
        tags = text(driver, "tags")
        assert re.search(r"echo 0 0 0 30 0", tags), tags
        assert re.search(r"bad 0 0 0 0 2", tags), tags
        fails = text(driver, "fails")
        assert "exited with status 3" in fails and "oops-" in fails, fails
        assert "2 connected" in text(driver, "n-workers")
        # Workers: both, each with the two cores it offers, none in use,
        # and the tasks each ran adding up to the run's.
        workers = table(driver, "workers")
        assert len(workers) == 2, workers
        assert all(w[2] == "0 / 2" for w in workers), workers
        assert sum(int(w[8]) for w in workers) == total, workers
        # Transfers: the input went from the manager (to each worker
        # that ran a task reading it, 100000 bytes each), the outputs
        # came back; the same bytes per source.
        kinds = {r[0]: r for r in table(driver, "kinds")}
        assert set(kinds) == {"manager", "peer", "url", "output"}, kinds
        r, body = get(url, "/api/state")
        X = json.loads(body)["xfer"]["kinds"]
        assert X["manager"][0] in (100000, 200000), X
        assert kinds["manager"][1] == {100000: "97.7 KiB",
                                       200000: "195.3 KiB"}[X["manager"][0]]
        assert kinds["manager"][2] == str(X["manager"][1])
        assert X["output"][1] == 2 and kinds["output"][2] == "2", kinds
        assert kinds["output"][1] == f"{X['output'][0]} B", kinds
        sources = table(driver, "sources")
        assert ["manager", "manager", kinds["manager"][1],
                kinds["manager"][2]] in sources, sources
        # The stream keeps the bars of the tasks that ended while the
        # page was open (60 s shown): the held one's at least.
        rows, bars, painted = stream_drawn(driver)
        assert rows >= 1 and bars >= 1 and painted > 0, (rows, bars)
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10000
        # Every request the page made went to the manager.
        urls = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        assert any(u.endswith("/events") for u in urls), urls
        assert any(u.endswith("/app.js") for u in urls), urls
        foreign = [u for u in urls if not u.startswith(origin + "/")]
        assert not foreign, foreign
    finally:
        driver.quit()
    # The linger ends at the signal: the run exits as interrupted, and
    # cleanly (a sanitized build would abort on a leak).
    p.signal(signal.SIGINT)
    assert p.wait(30) == 130


def read_events(sock_file, n):
    """The next n events from an SSE stream: (id, type, data) each."""
    out, ev = [], {}
    while len(out) < n:
        line = sock_file.readline()
        if not line:
            raise EOFError("stream closed")
        line = line.decode().rstrip("\n")
        if not line:
            if "data" in ev:
                out.append((int(ev["id"]), ev["event"],
                            json.loads(ev["data"])))
            ev = {}
            continue
        k, _, v = line.partition(": ")
        ev[k] = v
    return out


def open_stream(port, last=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    req = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if last is not None:
        req += f"Last-Event-ID: {last}\r\n"
    s.sendall((req + "\r\n").encode())
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):
        pass  # the response head
    return s, f


def test_event_stream_resumes_without_gap(xylem, tmp_path, secret_file):
    p = xylem.start("manager", "--secret-file", secret_file, "--http", "0")
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    port = urlsplit(url).port
    s, f = open_stream(port)
    (first,) = read_events(f, 1)
    assert first[1] == "snapshot" and first[2]["full"]
    updates = read_events(f, 2)
    ids = [first[0]] + [e[0] for e in updates]
    assert [e[1] for e in updates] == ["update", "update"]
    assert ids[1] == ids[0] + 1 and ids[2] == ids[1] + 1, ids
    s.close()
    # Away while the manager pushes at least two more events.
    time.sleep(5)
    s, f = open_stream(port, last=ids[-1])
    resumed = read_events(f, 3)
    assert [e[1] for e in resumed] == ["update"] * 3, resumed
    assert [e[0] for e in resumed] == [ids[-1] + 1 + i for i in range(3)]
    s.close()
    # An id the ring does not hold: a snapshot, numbered as the latest.
    s, f = open_stream(port, last=10 ** 9)
    (snap,) = read_events(f, 1)
    assert snap[1] == "snapshot" and snap[0] >= resumed[-1][0]
    s.close()
    p.signal(signal.SIGINT)
    assert p.wait(30) == 0


def test_metrics_parsed_by_prometheus(xylem, tmp_path):
    parser = pytest.importorskip("prometheus_client.parser")
    data = tmp_path / "in.bin"
    data.write_bytes(b"x" * 200000)
    tasks = [task(f"cat-{i}", "wc -c < in > out",
                  inputs=[(data, "in")],
                  outputs=[(tmp_path / f"out{i}", "out")]) for i in range(4)]
    tasks.append(task("fail", "exit 1"))
    p, url = run_with_dashboard(xylem, tmp_path, tasks)
    total, ok, failed = summary(p)
    r, body = get(url, "/metrics")
    assert r.status == 200
    assert r.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in parser.text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            key = s.name + json.dumps(s.labels, sort_keys=True)
            samples[key] = s.value
    assert samples['xylem_tasks{"state": "succeeded"}'] == ok == 4
    assert samples['xylem_tasks{"state": "failed"}'] == failed == 1
    assert samples['xylem_tasks{"state": "running"}'] == 0
    assert samples['xylem_queue_depth{}'] == 0
    assert samples['xylem_workers{"state": "connected"}'] == 2
    # The input went to each worker once (from the manager), the outputs
    # came back: bytes by kind.
    assert samples['xylem_transfer_bytes_total{"kind": "manager"}'] >= 200000
    assert samples['xylem_transfer_bytes_total{"kind": "output"}'] > 0
    assert samples['xylem_transfers_total{"kind": "output", "status": "ok"}'] == 4
    hits = samples['xylem_cache_lookups_total{"result": "hit"}']
    misses = samples['xylem_cache_lookups_total{"result": "miss"}']
    assert hits + misses == 4 and misses >= 1
    assert samples['xylem_scheduler_decision_seconds_count{}'] >= total
    assert samples['xylem_scheduler_decision_seconds_sum{}'] > 0
    # The linger ends at the signal: the run exits as interrupted, and
    # cleanly (a sanitized build would abort on a leak).
    p.signal(signal.SIGINT)
    assert p.wait(30) == 130


@pytest.mark.parametrize("tls", [True, False])
def test_exposed_dashboard_needs_its_token(xylem, tmp_path, secret_file, tls):
    """Beyond loopback: the token, and HTTPS with the manager's
    certificate unless the manager runs without TLS."""
    p = xylem.start("manager", "--secret-file", secret_file, "--http",
                    "0.0.0.0:0", *([] if tls else ["--no-tls"]))
    url = p.wait_line(r"dashboard at (https?://\S+)", 30).group(1)
    ca = p.wait_line(r"TLS CA (\S+)\)", 5).group(1) if tls else None
    assert url.startswith("https://" if tls else "http://")
    token = re.search(r"\?token=([0-9a-f]{32})$", url).group(1)
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{urlsplit(url).port}"
    for path in ("/", "/metrics", "/events", "/api/state", "/app.js"):
        r, _ = get(base, path, ca=ca)
        assert r.status == 401, path
    r, _ = get(base, "/metrics", {"Authorization": "Bearer " + "0" * 32},
               ca=ca)
    assert r.status == 401
    r, _ = get(base, "/metrics?token=" + token[:-1] + "x", ca=ca)
    assert r.status == 401
    r, body = get(base, "/metrics", {"Authorization": "Bearer " + token},
                  ca=ca)
    assert r.status == 200 and b"xylem_tasks" in body
    # The address printed: the token moves into a cookie.
    r, _ = get(base, "/?token=" + token, ca=ca)
    assert r.status == 302 and r.getheader("Location") == "/"
    cookie = r.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and ("; Secure" in cookie) == tls
    r, body = get(base, "/", {"Cookie": cookie.split(";")[0]}, ca=ca)
    assert r.status == 200 and b"<title>Xylem dashboard" in body
    if tls:
        # Plain HTTP gets nothing from it: no page, no token, no data.
        s = socket.create_connection(("127.0.0.1", urlsplit(url).port),
                                     timeout=10)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = s.recv(4096)
        except ConnectionResetError:
            reply = b""
        assert b"xylem_tasks" not in reply and b"HTTP/1.1 200" not in reply
        s.close()
    p.signal(signal.SIGINT)
    assert p.wait(30) == 0


def test_loopback_dashboard_answers_loopback_names_only(xylem, tmp_path,
                                                        secret_file):
    """With no token (on loopback), a Host naming another site (a page
    that rebound its name to 127.0.0.1) is refused; keep-alive holds
    several requests on one connection; a malformed one is answered 400
    and the connection closed."""
    p = xylem.start("manager", "--secret-file", secret_file, "--http", "0")
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    port = urlsplit(url).port
    r, _ = get(url, "/metrics", {"Host": "evil.example:%d" % port})
    assert r.status == 403
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ("/", "/app.css", "/app.js", "/metrics", "/nowhere"):
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        assert r.status == (404 if path == "/nowhere" else 200), path
    c.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    reply = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    p.signal(signal.SIGINT)
    assert p.wait(30) == 0


def test_bytes_per_source_kept_apart_by_kind(xylem, tmp_path, secret_file):
    """One worker (big) both serves a peer copy of a temp and returns an
    output: its two kinds of bytes are two sources, not one sum."""
    go, blocking = tmp_path / "go", tmp_path / "blocking"
    gate = f"while [ ! -e {go} ]; do sleep 0.05; done"
    tasks = [
        {"id": "make", "priority": 3,
         "command": "head -c 300000 /dev/zero > big; head -c 5000 /dev/zero"
                    " > back",
         "outputs": [{"path": str(tmp_path / "t"), "as": "big",
                      "temp": True},
                     {"path": str(tmp_path / "back"), "as": "back"}]},
        {"id": "block", "priority": 2,
         "command": f"touch {blocking}; {gate}"},
        {"id": "use", "priority": 1, "command": "wc -c < big > n",
         "inputs": [{"path": str(tmp_path / "t"), "as": "big"}],
         "outputs": [{"path": str(tmp_path / "n"), "as": "n"}]},
    ]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    mgr, port = xylem.manager(wf, secret_file, "--http", "0",
                              "--http-linger", "120")
    url = mgr.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    xylem.worker(port, secret_file, 1, "--name", "big")
    wait_for(blocking.exists, 30, what="make to end and block to start")
    xylem.worker(port, secret_file, 1, "--name", "other")
    wait_for((tmp_path / "n").exists, 60, what="use to end on other")
    go.touch()
    total, ok, failed = summary(mgr)
    assert (total, ok, failed) == (3, 3, 0)
    assert (tmp_path / "n").read_text().strip() == "300000"
    r, body = get(url, "/api/state")
    srcs = {(s[0], s[1]): (s[2], s[3]) for s in json.loads(body)["xfer"]["sources"]}
    assert srcs.get(("big", "peer")) == (300000, 1), srcs
    assert srcs[("big", "output")][0] >= 5000, srcs
    assert srcs[("big", "output")][0] < 300000, srcs
    assert srcs[("other", "output")][0] > 0, srcs
    mgr.signal(signal.SIGINT)
    assert mgr.wait(30) == 130


def metric_samples(body):
    parser = pytest.importorskip("prometheus_client.parser")
    samples = {}
    for fam in parser.text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            samples[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    return samples


def test_array_indexes_not_made_count_as_waiting(xylem, tmp_path):
    """An array of 5000 with no worker: the manager makes a window of
    tasks; the rest, not made yet, still wait, on /metrics, on the page's
    state and in `xylem status`."""
    p = xylem.start("run", "--array", "5000", "--workers", "0", "--http",
                    "0", "--", "true")
    st = p.wait_line(r"status: (xylem status .*)", 30).group(1)
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    p.wait_line(r"waiting for workers", 30)

    def metrics():
        r, body = get(url, "/metrics")
        return metric_samples(body)

    m = wait_for(lambda: (lambda m: m if m['xylem_tasks{"state": "ready"}']
                          else None)(metrics()), 30,
                 what="the first indexes made")
    waiting = m['xylem_tasks{"state": "waiting"}']
    ready = m['xylem_tasks{"state": "ready"}']
    assert 0 < ready < 5000 and waiting + ready == 5000, m
    assert m['xylem_queue_depth{}'] == 5000, m
    r, body = get(url, "/api/state")
    c = json.loads(body)["counts"]
    assert c["pending"] == waiting and c["waiting"] >= c["pending"], c
    args = shlex.split(st)
    out = subprocess.run([xylem.bin] + args[1:], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    mt = re.search(r"(\d+) ready, (\d+) waiting", out.stdout)
    assert mt and int(mt.group(1)) + int(mt.group(2)) == 5000, out.stdout
    p.signal(signal.SIGINT)
    assert p.wait(30) == 130


def test_workers_cache_in_bytes(xylem, tmp_path):
    """The workers table gives each worker's cache in bytes as well as
    objects: the input it fetched and the outputs it wrote."""
    data = tmp_path / "in.bin"
    data.write_bytes(b"x" * 300000)
    tasks = [task(f"cat-{i}", f"head -c {1000 * (i + 1)} in > out",
                  inputs=[(data, "in")],
                  outputs=[(tmp_path / f"out{i}", "out")]) for i in range(3)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    p = xylem.start("run", wf, "--workers", "1", "--http", "0",
                    "--http-linger", "120")
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    assert summary(p) == (3, 3, 0)
    r, body = get(url, "/api/state")
    (w,) = json.loads(body)["workers"]["list"]
    assert w[8] == 4, w  # the input and three outputs
    assert w[12] == 300000 + 1000 + 2000 + 3000, w
    p.signal(signal.SIGINT)
    assert p.wait(30) == 130


def test_dashboard_cpu_counted(xylem, tmp_path, secret_file):
    """xylem_dashboard_seconds_total: the manager's CPU spent on the
    dashboard grows as a client reads events, and is part of the
    process's CPU (process_cpu_seconds_total) beside it."""
    p = xylem.start("manager", "--secret-file", secret_file, "--http", "0")
    url = p.wait_line(r"dashboard at (http://\S+)", 30).group(1)
    r, body = get(url, "/metrics")
    m0 = metric_samples(body)
    s0 = m0["xylem_dashboard_seconds_total{}"]
    assert s0 > 0 and m0["process_cpu_seconds_total{}"] > s0, m0
    s, f = open_stream(urlsplit(url).port)
    read_events(f, 3)
    s.close()
    for _ in range(20):
        get(url, "/api/state")
    r, body = get(url, "/metrics")
    m1 = metric_samples(body)
    s1 = m1["xylem_dashboard_seconds_total{}"]
    assert s1 > s0, (m0, m1)
    assert m1["process_cpu_seconds_total{}"] > s1
    p.signal(signal.SIGINT)
    assert p.wait(30) == 0
