"""A call or a fresh task that writes over its input file fails saying
so, and the next call on the same worker reads the right bytes
(docs/security.md, "Cached objects"): one worker, so the object that was
written over is the one the next call is lent, unless it was dropped and
fetched again."""

import pytest

import pyfuncs
import xylem
from conftest import TIMEOUT


@pytest.mark.parametrize("fresh", [False, True])
def test_call_that_writes_its_input_fails(make_executor, tmp_path, fresh):
    ex = make_executor(workers=1)
    src = tmp_path / "in.txt"
    src.write_text("the right bytes\n")
    inp = [xylem.File(src, name="a.txt")]
    bad = ex.options(inputs=inp, fresh=fresh).submit(pyfuncs.clobber,
                                                      "a.txt")
    with pytest.raises(xylem.TaskFailed,
                       match="the task modified its input 'a.txt'"):
        bad.result(TIMEOUT)
    good = ex.options(inputs=inp, fresh=fresh).submit(pyfuncs.read_text,
                                                       "a.txt")
    assert good.result(TIMEOUT) == "the right bytes\n"
    assert src.read_text() == "the right bytes\n"
