"""Scheduling through the real manager and worker: tasks that no free
worker fits do not hold up those that fit (no head-of-line blocking)."""

from helpers import task, write_workflow


def test_gpu_tasks_do_not_block_core_tasks(xylem, tmp_path, secret_file):
    # 100 one-GPU tasks queued ahead of 10 one-core tasks, on a worker
    # with 2 cores and 1 GPU: one GPU task runs at a time, and the core it
    # leaves free runs the one-core tasks at once. (The scheduler gave up
    # a round after 32 tasks set aside: the one-core tasks ran only once
    # fewer than 32 GPU tasks were left, after 68 of them.)
    log = tmp_path / "order.log"
    gpu = [task(f"g{i}", f"sleep 0.05; echo g >> {log}",
                resources={"cores": 1, "gpus": 1}) for i in range(100)]
    cpu = [task(f"c{i}", f"echo c >> {log}") for i in range(10)]
    wf = write_workflow(tmp_path / "wf.json", gpu + cpu)
    mgr, port = xylem.manager(wf, secret_file)
    xylem.worker(port, secret_file, 2, "--gpus", "1")
    assert mgr.wait(120) == 0, mgr.output[-2000:]
    order = log.read_text().split()
    assert order.count("g") == 100 and order.count("c") == 10
    last_c = max(i for i, x in enumerate(order) if x == "c")
    assert order[:last_c].count("g") < 20, "".join(order)
