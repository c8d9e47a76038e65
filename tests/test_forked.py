"""fairaudit.forked.ForkedJob: a value, a user error and a crash come back from the child
as they would from a call here; a child may fork again; none is left behind."""
import os

import pytest

from fairaudit import forked
from fairaudit.errors import UserInputError


def _square(x):
    return x * x


def _nested(x):
    # a forked child forking again (what a daemonic multiprocessing child may not do)
    return forked.ForkedJob(_square, (x,), "squaring", fork=True).finish() + 1


def _refuse():
    raise UserInputError("cannot read it", path="in.csv", hint="fix the file")


def _die():
    os._exit(3)


def _boom():
    raise ValueError("exploded")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_values_errors_and_crashes_come_back():
    assert forked.ForkedJob(_square, (7,), "squaring", fork=True).finish() == 49
    assert forked.ForkedJob(_nested, (3,), "nesting", fork=True).finish() == 10
    with pytest.raises(UserInputError) as info:
        forked.ForkedJob(_refuse, (), "reading", fork=True).finish()
    assert (info.value.path, info.value.hint) == ("in.csv", "fix the file")
    with pytest.raises(RuntimeError, match="crashing failed: the worker process ended without a result"):
        forked.ForkedJob(_die, (), "crashing", fork=True).finish()
    with pytest.raises(RuntimeError, match="(?s)exploding failed: .*ValueError: exploded"):
        forked.ForkedJob(_boom, (), "exploding", fork=True).finish()
    assert forked.ForkedJob(_square, (5,), "squaring", fork=False).finish() == 25   # no fork: here and now
    assert forked._LIVE == set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_stops_and_collects_the_child():
    import time

    job = forked.ForkedJob(time.sleep, (30,), "sleeping", fork=True)
    pid = job.pid
    assert pid in forked._LIVE
    job.kill()
    assert forked._LIVE == set()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)          # already collected: no zombie left
