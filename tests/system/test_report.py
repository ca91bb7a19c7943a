"""A task's output where a user looks for it, `xylem status` over a run's
history (filters, one task's events and output), the names the history
gives tasks and files, and `xylem report` opened in a real headless
Chromium (docs/history.md, docs/observability.md)."""

import json
import re
import shlex
import shutil
import sqlite3
import subprocess

import pytest

from helpers import browser_missing, task, wait_for, write_workflow


def query(db, sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def mixed_workflow(tmp_path):
    """Six tasks that print, two of which fail, one reading a file."""
    data = tmp_path / "input.txt"
    data.write_text("payload\n")
    tasks = [task(f"say-{i}", f"echo out-{i}; echo err-{i} >&2")
             for i in range(3)]
    tasks.append(task("reader", "cat in; echo read-done",
                      inputs=[(data, "in")]))
    tasks.append(task("broken", "echo 'cannot parse line 7' >&2; exit 3"))
    tasks.append(task("crashy", "head -c 9000 /dev/zero | tr '\\0' x;"
                      " echo; echo LAST-LINE; exit 5"))
    return write_workflow(tmp_path / "wf.json", tasks)


@pytest.fixture
def finished_run(xylem, tmp_path):
    db = tmp_path / "run.db"
    wf = mixed_workflow(tmp_path)
    r = xylem.run("run", wf, "--workers", "2", "--history", db, timeout=90)
    assert r.returncode == 1, r.output  # two tasks failed
    return db


def test_history_keeps_each_tasks_output_tail(finished_run):
    db = finished_run
    out = dict(query(db, "SELECT tag, output FROM task_events"
                         " WHERE event = 'done'"))
    assert out["say-1"] == "out-1\nerr-1\n"
    assert "cannot parse line 7" in out["broken"]
    # 9 KB of output: the last 4 KiB are kept, its end included.
    assert len(out["crashy"]) == 4096
    assert out["crashy"].endswith("LAST-LINE\n")
    # The file a transfer moved is named by its path as well as its hash.
    rows = query(db, "SELECT path, kind, length(object) FROM transfers"
                     " WHERE status = 'ok'")
    assert any(p.endswith("input.txt") and k == "manager" and n == 64
               for p, k, n in rows), rows


def test_status_shows_a_tasks_output(xylem, finished_run):
    r = xylem.run("status", finished_run, "broken", timeout=20)
    assert r.returncode == 0, r.output
    assert "cannot parse line 7" in r.output
    assert "exit code 3" in r.output
    assert re.search(r"dispatched\s+\S+", r.output), r.output
    # By id too: the id the list shows.
    r = xylem.run("status", finished_run, "--tag", "say-2", timeout=20)
    tid = re.search(r"^(\d+)\s+say-2", r.output, re.M).group(1)
    r = xylem.run("status", finished_run, tid, timeout=20)
    assert "out-2\nerr-2" in r.output, r.output
    r = xylem.run("status", finished_run, "nosuch", timeout=20)
    assert r.returncode == 1
    assert "no task 'nosuch'" in r.output


def listed_tags(output):
    return [m.group(1) for m in re.finditer(r"^\d+\s+(\S+)\s", output, re.M)]


def test_status_filters(xylem, finished_run):
    r = xylem.run("status", finished_run, timeout=20)
    assert r.returncode == 0, r.output
    assert sorted(listed_tags(r.output)) == sorted(
        ["say-0", "say-1", "say-2", "reader", "broken", "crashy"])
    r = xylem.run("status", finished_run, "--state", "failed", timeout=20)
    assert sorted(listed_tags(r.output)) == ["broken", "crashy"]
    assert "exited with status 3" in r.output
    r = xylem.run("status", finished_run, "--state", "succeeded",
                  "--limit", "2", timeout=20)
    assert len(listed_tags(r.output)) == 2
    assert "(2 more" in r.output
    worker = query(finished_run, "SELECT worker FROM task_events WHERE"
                                 " tag = 'reader' AND event = 'done'")[0][0]
    r = xylem.run("status", finished_run, "--worker", worker, "--limit",
                  "0", timeout=20)
    assert "reader" in listed_tags(r.output)
    expected = query(finished_run, "SELECT count(DISTINCT task_id) FROM"
                     f" task_events WHERE event = 'done' AND worker ="
                     f" '{worker}'")[0][0]
    assert len(listed_tags(r.output)) == expected
    r = xylem.run("status", finished_run, "--state", "bogus", timeout=20)
    assert r.returncode == 2


def test_status_of_a_live_manager_reads_its_history(xylem, tmp_path,
                                                    secret_file):
    db = tmp_path / "live.db"
    wf = write_workflow(tmp_path / "wf.json", [
        task("quick", "echo quick-output"),
        task("slow", "sleep 60"),
    ])
    mgr, port = xylem.manager(wf, secret_file, "--history", db)
    xylem.worker(port, secret_file, 2)

    def quick_done():
        r = xylem.run("status", f"127.0.0.1:{port}", "quick",
                      "--secret-file", secret_file, timeout=20)
        return r if "quick-output" in r.output else None
    r = wait_for(quick_done, 30, interval=0.3, what="quick's output")
    assert r.returncode == 0
    # The history is written in batches (within 50 ms): what the live
    # manager shows may be a moment ahead of it.
    def slow_running():
        r = xylem.run("status", f"127.0.0.1:{port}", "--state", "running",
                      "--secret-file", secret_file, timeout=20)
        assert r.returncode == 0, r.output
        return r if listed_tags(r.output) == ["slow"] else None
    r = wait_for(slow_running, 30, interval=0.1, what="slow listed running")
    assert "1 returned (1 succeeded, 0 failed)" in r.output
    assert "1 running" in r.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args):
    if not CHROMIUM:
        browser_missing("chromium is not installed")
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox",
                        "--disable-gpu", *args], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_report_in_chromium(xylem, finished_run, tmp_path):
    page = tmp_path / "report.html"
    r = xylem.run("report", finished_run, "-o", page, timeout=60)
    assert r.returncode == 0, r.output
    html = page.read_text()
    # Self-contained: nothing loaded from anywhere.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""",
                         html, re.I)
    assert "<link" not in html and "@import" not in html

    dom = chromium("--dump-dom", page.as_uri())
    # The numbers the page's own script rendered are the run's.
    def cell(cid):
        m = re.search(rf'id="{cid}"[^>]*>([^<]*)<', dom)
        assert m, f"no #{cid} in the rendered page"
        return m.group(1)
    n = query(finished_run, "SELECT count(DISTINCT task_id),"
              " sum(event = 'done' AND result = 0),"
              " sum(event = 'done' AND result != 0) FROM task_events")[0]
    assert (cell("n-tasks"), cell("n-succeeded"), cell("n-failed")) == \
        (str(n[0]), str(n[1]), str(n[2])) == ("6", "4", "2")
    failed = re.search(r'<table id="failed">(.*?)</table>', dom, re.S)
    assert failed, "no failed-task table"
    names = set(re.findall(r"<td>(broken|crashy)</td>", failed.group(1)))
    assert names == {"broken", "crashy"}
    assert "cannot parse line 7" in failed.group(1)
    assert dom.count("<svg") >= 5  # the charts were drawn
    tags = re.search(r'<table id="tags">(.*?)</table>', dom, re.S).group(1)
    assert "<td>say</td>" in tags  # say-0..2 grouped under one tag
    # And a screenshot, for people.
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2400",
             page.as_uri())
    assert shot.stat().st_size > 10000
    # A data block that could end the script early is escaped.
    data = re.search(r'<script id="data" type="application/json">(.*?)'
                     r'</script>', html, re.S).group(1)
    doc = json.loads(data)
    assert doc["counts"]["tasks"] == 6


def test_log_dir_keeps_worker_logs(xylem, tmp_path):
    logs = tmp_path / "logs"
    wf = write_workflow(tmp_path / "wf.json",
                        [task(f"t{i}", "true") for i in range(4)])
    r = xylem.run("run", wf, "--workers", "2", "--log-dir", logs,
                  timeout=60)
    assert r.returncode == 0, r.output
    files = sorted(logs.glob("worker-*.log"))
    assert len(files) == 2, files
    for f in files:
        text = f.read_text()
        # The worker's info lines, kept after it exited.
        assert "connected to 127.0.0.1:" in text, text
        assert "stopping" in text, text


def test_report_cache_hits(xylem, tmp_path):
    """Tasks reading one file on one one-core worker: the first fetches
    it, the others find it cached; the page says so."""
    data = tmp_path / "shared.txt"
    data.write_text("shared\n")
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"r{i}", "cat in", inputs=[(data, "in")]) for i in range(3)])
    db = tmp_path / "run.db"
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "1",
                  "--history", db, timeout=60)
    assert r.returncode == 0, r.output
    details = sorted(d.split(", cores")[0] for (d,) in query(
        db, "SELECT detail FROM task_events WHERE event = 'dispatched'"))
    assert details == ["inputs 1, cached 0", "inputs 1, cached 1",
                       "inputs 1, cached 1"], details
    page = tmp_path / "r.html"
    assert xylem.run("report", db, "-o", page).returncode == 0
    dom = chromium("--dump-dom", page.as_uri())
    m = re.search(r'id="cache-hit"[^>]*>([^<]*)<', dom)
    assert m and m.group(1) == "66.7% of 3 inputs", m and m.group(1)


def test_report_resources_in_use(xylem, tmp_path):
    # Tasks that hold 2 cores and 300 MB each: the report's cores and
    # memory over time add up, bin by bin, to what each task held for as
    # long as it ran (from the history's own times).
    db = tmp_path / "run.db"
    tasks = [task(f"hold-{i}", "sleep 0.4",
                  resources={"cores": 2, "memory": 300}) for i in range(4)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "4",
                  "--history", db, timeout=90)
    assert r.returncode == 0, r.output
    page = tmp_path / "report.html"
    r = xylem.run("report", db, "-o", page, timeout=60)
    assert r.returncode == 0, r.output
    html = page.read_text()
    doc = json.loads(re.search(r'<script id="data" type="application/json">'
                               r'(.*?)</script>', html, re.S).group(1))
    spans = query(db, "SELECT max(CASE WHEN event = 'done' THEN time END) -"
                  " max(CASE WHEN event = 'dispatched' THEN time END)"
                  " FROM task_events GROUP BY task_id")
    held = sum(s for (s,) in spans)
    width = doc["bin_width"]
    cores = sum(doc["concurrency"]["cores"]) * width
    memory = sum(doc["concurrency"]["memory_mb"]) * width
    assert cores == pytest.approx(2 * held, rel=0.02, abs=0.01)
    assert memory == pytest.approx(300 * held, rel=0.02, abs=1)
    assert max(doc["concurrency"]["cores"]) <= 4 + 1e-6
    dom = chromium("--dump-dom", page.as_uri())
    assert 'id="resources"' in dom


def test_run_says_how_to_reach_its_manager(xylem, tmp_path):
    """`xylem run --workers 0` prints the `xylem status` command that
    reaches its manager and the `xylem worker` command that serves it;
    both work as printed, against the live manager."""
    wf = write_workflow(tmp_path / "wf.json", [task("hello", "echo hi")])
    p = xylem.start("run", wf, "--workers", "0")
    st = p.wait_line(r"status: (xylem status .*)", 30).group(1)
    wk = p.wait_line(r"start a worker: (xylem worker .*)", 30).group(1)
    r = subprocess.run([xylem.bin] + shlex.split(st)[1:],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(r"tasks +0 returned .* 1 ready", r.stdout), r.stdout
    w = xylem.start(*shlex.split(wk)[1:])
    assert p.wait(60) == 0, p.output
    assert "1 task: 1 succeeded, 0 failed" in p.output, p.output
    w.signal(2)
    w.wait(30)
