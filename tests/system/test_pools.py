"""Pools with the local provider (docs/scaling.md): `xylem run --pool`
asks for workers as the queued tasks need them, within the pool's
maximum, releases the idle ones, and fails at once a task no pool could
run. The same logic drives the slurm provider (tests/slurm)."""

import json
import re

from helpers import task, write_workflow


def pool_run(xylem, wf, *pools, timeout=120):
    args = ["run", wf, "--quiet"]
    for p in pools:
        args += ["--pool", p]
    return xylem.run(*args, timeout=timeout,
                     env={**xylem.env, "XYLEM_LOG": "info"})


def submitted(output):
    return re.findall(r"pool \S+: submitted job \d+ \((\S+)\)", output)


def test_burst_scales_out_to_the_maximum(xylem, tmp_path):
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"sleep 0.5; echo {i} > o",
             outputs=[(out / str(i), "o")]) for i in range(8)])
    r = pool_run(xylem, wf, "name=loc,cores=2,max=3,backlog=3,idle=30")
    assert r.returncode == 0, r.output
    for i in range(8):
        assert (out / str(i)).read_text() == f"{i}\n"
    # Eight one-core tasks on two-core workers: four workers' worth, but
    # the maximum is three, and no more were asked for.
    names = submitted(r.output)
    assert len(names) == 3, r.output
    assert len(set(names)) == 3


def test_small_burst_asks_only_for_what_it_needs(xylem, tmp_path):
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"echo {i} > o", outputs=[(out / str(i), "o")])
        for i in range(3)])
    r = pool_run(xylem, wf, "name=loc,cores=4,max=10,backlog=10")
    assert r.returncode == 0, r.output
    assert len(submitted(r.output)) == 1, r.output


def test_idle_worker_is_released(xylem, tmp_path):
    """Two workers for two tasks; then one long task: the other worker,
    idle past the pool's idle timeout, is drained and exits 0 while the
    run goes on."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("a", "sleep 0.3; echo a > o", outputs=[(out / "a", "o")]),
        task("b", "sleep 0.3; echo b > o", outputs=[(out / "b", "o")]),
        task("c", "cat a > o; sleep 4", inputs=[(out / "a", "a")],
             outputs=[(out / "c", "o")])])
    r = pool_run(xylem, wf, "name=loc,cores=1,max=2,backlog=2,idle=1")
    assert r.returncode == 0, r.output
    assert (out / "c").read_text() == "a\n"
    released = re.findall(r"pool loc: releasing (\S+), idle for", r.output)
    assert len(released) == 1, r.output
    assert re.search(rf"job \d+ \({re.escape(released[0])}\) ended: "
                     r"(its worker disconnected|the worker exited 0)",
                     r.output), r.output
    assert "ended before its worker connected" not in r.output


def test_unfit_task_fails_at_once(xylem, tmp_path):
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("ok", "echo ok > o", outputs=[(out / "ok", "o")]),
        task("big", "true", resources={"cores": 64}),
        task("gpu", "true", resources={"gpus": 1})])
    r = pool_run(xylem, wf, "name=cpu,cores=2,max=1",
                 "name=mem,cores=4,memory=1000,max=1", timeout=60)
    assert r.returncode == 1, r.output
    assert (out / "ok").read_text() == "ok\n"
    for t in ("big", "gpu"):
        assert f'failed: task "{t}": unschedulable' in r.output, r.output
    assert ("no pool can run it: it asks for 64 cores, 0 GPUs, 0 MB "
            "memory; the pools offer cpu: 2 cores, 0 GPUs, 0 MB; mem: 4 "
            "cores, 0 GPUs, 1000 MB") in r.output, r.output


def test_status_shows_pools(xylem, tmp_path, secret_file):
    mgr = xylem.start("manager", "--host", "127.0.0.1", "--secret-file",
                      secret_file, "--pool",
                      "name=cpu,provider=local,cores=2,max=4,backlog=2,"
                      "min=1")
    port = int(mgr.wait_line(r"listening on port (\d+)", 30).group(1))
    mgr.wait_line(r"pool cpu: job \d+'s worker \S+ connected", 30)
    r = xylem.run("status", f"127.0.0.1:{port}", "--json",
                  "--secret-file", secret_file)
    assert r.returncode == 0, r.output
    pools = json.loads(r.output)["pools"]
    assert [p["name"] for p in pools] == ["cpu"]
    p = pools[0]
    assert p["provider"] == "local" and p["cores"] == 2
    assert p["connected"] == 1 and p["pending"] == 0, p
    assert p["min_workers"] == 1 and p["max_workers"] == 4
    assert p["jobs"][0]["state"] == "connected"


def test_bad_pool_specs(xylem, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", [task("a", "true")])
    for spec, says in [
            ("cores=2", "name= and cores= are needed"),
            ("name=x", "name= and cores= are needed"),
            ("name=x,cores=two", "cores wants a whole number from 1 to"
             " 1048576, not 'two'"),
            ("name=x,cores=1,colour=red", "unknown key 'colour'"),
            ("name=x,cores", "'cores' is not KEY=VALUE")]:
        r = xylem.run("run", wf, "--pool", spec)
        assert r.returncode == 2, (spec, r.output)
        assert says in r.output, (spec, r.output)
    r = xylem.run("run", wf, "--pool", "name=x,cores=1,provider=pbs")
    assert r.returncode != 0
    assert "unknown provider 'pbs' (local, slurm or gridengine)" in r.output, r.output
    r = xylem.run("run", wf, "--pool", "name=bad/name,cores=1")
    assert r.returncode != 0
    assert "pool name 'bad/name'" in r.output, r.output


def test_unfit_is_per_task_not_per_shape(xylem, tmp_path):
    """Tasks of 1,900 and 1,100 MB share a shape (a power of two of
    memory): only the one no pool's worker fits fails."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("big", "true", resources={"memory": 1900}),
        task("small", "echo s > o", outputs=[(out / "s", "o")],
             resources={"memory": 1100})])
    r = pool_run(xylem, wf, "name=p,cores=1,memory=1500,max=1", timeout=60)
    assert r.returncode == 1, r.output
    assert 'failed: task "big": unschedulable' in r.output, r.output
    assert "asks for 1 cores, 0 GPUs, 1900 MB" in r.output, r.output
    assert (out / "s").read_text() == "s\n"


def test_local_workers_beside_pools_count(xylem, tmp_path):
    """A task larger than any pool's worker but within a worker the run
    started itself is not unschedulable."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task(f"t{i}", f"echo {i} > o", outputs=[(out / str(i), "o")],
             resources={"cores": 4}) for i in range(2)])
    r = xylem.run("run", wf, "--workers", "1", "--cores-per-worker", "4",
                  "--pool", "name=p,cores=2,max=1", timeout=60)
    assert r.returncode == 0, r.output
    assert (out / "0").read_text() == "0\n"


def test_pool_numbers_must_be_finite_and_whole(xylem, tmp_path):
    wf = write_workflow(tmp_path / "wf.json", [task("a", "true")])
    for spec, says in [
            ("name=x,cores=1,idle=nan", "idle wants a number"),
            ("name=x,cores=2.5", "cores wants a whole number"),
            ("name=x,cores=1,priority=inf", "priority wants a whole"),
            ("name=x,cores=1,provider=pbs",
             "unknown provider 'pbs' (local, slurm or gridengine)")]:
        r = xylem.run("run", wf, "--pool", spec)
        assert r.returncode == 2, (spec, r.output)
        assert says in r.output, (spec, r.output)


def test_pools_from_a_file(xylem, tmp_path):
    """--pools FILE: a --pool SPEC a line, with comments and blank lines;
    a bad line is named by its number; a missing or empty file is an
    error."""
    out = tmp_path / "out"
    wf = write_workflow(tmp_path / "wf.json", [
        task("g", "echo g > o", outputs=[(out / "g", "o")],
             resources={"gpus": 1}),
        task("c", "echo c > o", outputs=[(out / "c", "o")])])
    conf = tmp_path / "pools.conf"
    conf.write_text("# the machine's pools\n"
                    "name=cpu,cores=2,max=1   # CPU only\n"
                    "\n"
                    "  name=gpu,cores=2,gpus=1,max=1\n")
    r = xylem.run("run", wf, "--quiet", "--pools", conf, timeout=120,
                  env={**xylem.env, "XYLEM_LOG": "info"})
    assert r.returncode == 0, r.output
    assert (out / "g").read_text() == "g\n"
    assert (out / "c").read_text() == "c\n"
    assert sorted(re.findall(r"pool (\w+) \(local\)", r.output)) == \
        ["cpu", "gpu"], r.output
    conf.write_text("name=cpu,cores=2\nname=gpu,cores=2,gpus=one\n")
    r = xylem.run("run", wf, "--pools", conf)
    assert r.returncode == 2, r.output
    assert f"xylem run: {conf}:2: --pool: gpus wants a whole number" in \
        r.output, r.output
    # A '#' inside a value is not a comment.
    conf.write_text("name=cpu,cores=2#x  # a comment\n")
    r = xylem.run("run", wf, "--pools", conf)
    assert "cores wants a whole number from 1 to 1048576, not '2#x'" in \
        r.output, r.output
    for text, says in [("# nothing\n\n", "no pool in it"),
                       (None, "No such file or directory")]:
        if text is None:
            conf.unlink()
        else:
            conf.write_text(text)
        r = xylem.run("manager", "--pools", conf)
        assert r.returncode == 2, r.output
        assert f"xylem manager: --pools {conf}: {says}" in r.output, \
            r.output
