"""Fan-out: a thousand independent tasks, each writing its own output file,
all collected back to the manager's side and checked."""

import pytest

from helpers import task, write_workflow

N = 1000


@pytest.mark.slow
def test_fanout_1000(xylem, tmp_path):
    out = tmp_path / "out"
    tasks = [task(f"t{i}", f"echo {i} > out",
                  outputs=[(out / f"{i}.txt", "out")]) for i in range(N)]
    wf = write_workflow(tmp_path / "wf.json", tasks)
    r = xylem.run("run", wf, "--workers", "2", timeout=300)
    assert r.returncode == 0, r.output[-3000:]
    assert f"{N} succeeded, 0 failed" in r.output
    bad = [i for i in range(N)
           if not (out / f"{i}.txt").is_file()
           or (out / f"{i}.txt").read_text() != f"{i}\n"]
    assert not bad, f"{len(bad)} outputs missing or wrong, e.g. {bad[:5]}"
    assert len(list(out.iterdir())) == N
