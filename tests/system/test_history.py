"""The run history (--history): every task has events, the database is in
WAL mode, workers are recorded, and a second run appends to the same file
(docs/history.md)."""

import sqlite3

from helpers import task, write_workflow


def query(db, sql):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def workflow(tmp_path, n):
    out = tmp_path / "out"
    tasks = [task(f"h{i}", f"echo {i} > o", outputs=[(out / f"{i}", "o")])
             for i in range(n)]
    tasks.append(task("last", "cat " + " ".join(f"i{i}" for i in range(n))
                      + " > all",
                      inputs=[(out / f"{i}", f"i{i}") for i in range(n)],
                      outputs=[(out / "all", "all")]))
    return write_workflow(tmp_path / "wf.json", tasks)


def test_history_records_the_run(xylem, tmp_path):
    db = tmp_path / "run.db"
    wf = workflow(tmp_path, 5)
    r = xylem.run("run", wf, "--workers", "2", "--history", db, timeout=60)
    assert r.returncode == 0, r.output

    assert query(db, "PRAGMA journal_mode")[0][0] == "wal"
    tags = {row[0] for row in query(db, "SELECT DISTINCT tag FROM task_events")}
    assert tags >= {f"h{i}" for i in range(5)} | {"last"}, tags
    # Every task came back, successfully.
    done = query(db, "SELECT tag, result FROM task_events"
                     " WHERE event = 'returned'")
    assert sorted(t for t, _ in done) == sorted([f"h{i}" for i in range(5)]
                                               + ["last"])
    assert all(res == 0 for _, res in done)
    # Events of one task are in time order and start with its submission.
    first = query(db, "SELECT event FROM task_events WHERE tag = 'last'"
                      " ORDER BY time, rowid LIMIT 1")
    assert first[0][0] == "submitted"
    workers = query(db, "SELECT count(*), count(DISTINCT worker)"
                        " FROM worker_events")
    assert workers[0][0] > 0 and workers[0][1] >= 1
    runs = query(db, "SELECT count(*), min(ended >= started) FROM runs")
    assert runs[0] == (1, 1)


def test_history_appends(xylem, tmp_path):
    db = tmp_path / "run.db"
    wf = workflow(tmp_path, 2)
    for _ in range(2):
        r = xylem.run("run", wf, "--workers", "1", "--history", db,
                      timeout=60)
        assert r.returncode == 0, r.output
    assert query(db, "SELECT count(*) FROM runs")[0][0] == 2
    per_run = query(db, "SELECT run, count(DISTINCT tag) FROM task_events"
                        " GROUP BY run ORDER BY run")
    assert [n for _, n in per_run] == [3, 3]


def test_history_unwritable(xylem, tmp_path):
    (tmp_path / "file").write_text("")
    wf = workflow(tmp_path, 1)
    r = xylem.run("run", wf, "--workers", "1", "--history",
                  tmp_path / "file/run.db", timeout=30)
    assert r.returncode != 0
    assert "run.db" in r.output
