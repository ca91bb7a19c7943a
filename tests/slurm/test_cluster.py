"""The Slurm test cluster itself (cluster.py): its nodes have the shape
asked for, and jobs see the variables that workers size themselves from."""

import cluster


def job_env(slurm, tmp_path, name, *args):
    """Runs `env` as a job; returns the job's environment as a dict."""
    out = tmp_path / f"{name}.out"
    job = slurm.sbatch("-t", "1", "-o", out, *args, "--wrap", "env")
    slurm.wait_job(job, "COMPLETED", 30)
    return dict(line.split("=", 1) for line in out.read_text().splitlines()
                if "=" in line)


def test_nodes_have_their_shape(slurm):
    out = slurm.run("sinfo", "-h", "-N", "-o", "%N %P %c %m %G %T")
    nodes = {f[0]: f[1:] for f in map(str.split, out.splitlines())}
    assert sorted(nodes) == ["c1", "c2", "c3", "c4", "c5", "c6", "g1", "g2"]
    for n in ("c1", "c6"):
        assert nodes[n] == ["cpu*", "8", "16000", "(null)", "idle"]
    for n in ("g1", "g2"):
        assert nodes[n] == ["gpu", "8", "32000", "gpu:2", "idle"]


def test_jobs_see_their_allocation(slurm, tmp_path):
    env = job_env(slurm, tmp_path, "cpu", "-p", "cpu", "-c", "4",
                  "--mem", "2000")
    assert env["SLURM_CPUS_ON_NODE"] == "4"
    assert env["SLURM_MEM_PER_NODE"] == "2000"
    assert "SLURM_GPUS_ON_NODE" not in env
    env = job_env(slurm, tmp_path, "gpu", "-p", "gpu", "--gres", "gpu:2",
                  "--mem", "1000")
    assert env["SLURMD_NODENAME"] in ("g1", "g2")
    assert env["SLURM_GPUS_ON_NODE"] == "2"
    # The fake GPUs are device nodes, so Slurm names them as it would
    # real ones.
    assert env["SLURM_JOB_GPUS"] == "0,1"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_a_cluster_of_another_shape():
    """Node groups are parameters; a second cluster runs beside the
    session's on ports of its own, and leaves nothing when stopped."""
    groups = [cluster.NodeGroup("s", 2, "small", cpus=2, memory_mb=1000,
                                default=True),
              cluster.NodeGroup("h", 1, "big", cpus=64, memory_mb=512000,
                                gpus=4)]
    c = cluster.SlurmCluster(groups)
    try:
        c.start()
        out = c.run("sinfo", "-h", "-N", "-o", "%N %P %c %m %G %T")
        assert sorted(out.splitlines()) == [
            "h1 big 64 512000 gpu:4 idle",
            "s1 small* 2 1000 (null) idle",
            "s2 small* 2 1000 (null) idle"]
        pids = c.leftovers()
        # slurmctld, its slurmscriptd and three slurmd
        assert len(pids) == 5, pids
    finally:
        assert c.stop() == []
    assert not any(map(cluster.pid_alive, pids))
    assert not c.dir.exists()
