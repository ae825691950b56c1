"""Async requests: overlap, test/wait/wait_all, and garbage-collector safety."""

import gc
import time
import weakref

import numpy as np
import pytest

import mlcomm


def _churn():
    """Allocates and fills memory of the sizes used below, so that a freed buffer would
    be reused (and scribbled on) at once."""
    junk = [np.full(1 << 16, -7.0) for _ in range(32)]
    junk += [np.full(n, -7.0, dtype=np.float32) for n in (1000, 4096, 1 << 16) for _ in range(8)]
    del junk
    gc.collect()


def _progress_until(pred, what, limit_s=15.0):
    t0 = time.monotonic()
    while not pred():
        mlcomm.progress()
        if time.monotonic() - t0 > limit_s:
            pytest.fail(f"{what} within {limit_s} s")
        time.sleep(0.0005)


def test_overlap_with_compute(comm):
    """The allreduce advances (via test()) while numpy works on other data."""
    n, rank = comm.size, comm.rank
    grads = np.full(1 << 18, float(rank + 1), dtype=np.float32)
    req = comm.allreduce(grads, op="avg", async_=True)
    acc = np.zeros(4096)
    polls = 0
    while not req.test():
        acc += np.sin(np.arange(4096.0))  # "compute" that touches none of grads
        polls += 1
        if polls > 200000:
            pytest.fail("the allreduce never completed")
    assert req.done and req.wait() is grads
    assert (grads == np.float32((n + 1) / 2)).all()


def test_wait_all_mixed(comm):
    n, rank = comm.size, comm.rank
    a = np.full(10, rank, dtype=np.int64)
    b = np.zeros(n, dtype=np.float64)
    halo = np.zeros(3, dtype=np.float32)
    reqs = [
        comm.allreduce(a, async_=True),
        comm.allgather(np.array([rank + 0.5]), out=b, async_=True),
        comm.recv(halo, (rank - 1) % n, 7, async_=True),
        comm.send(np.full(3, rank, np.float32), (rank + 1) % n, 7, async_=True),
        comm.barrier(async_=True),
    ]
    res = mlcomm.wait_all(reqs)
    assert res[0] is a and (a == n * (n - 1) // 2).all()
    assert res[1] is b and (b == np.arange(n) + 0.5).all()
    assert res[2] == mlcomm.Status((rank - 1) % n, 7, 12)
    assert res[3] is None and res[4] is None
    assert (halo == (rank - 1) % n).all()
    assert all(r.done for r in reqs)
    # waiting again (or wait_all again) gives the same results
    assert reqs[0].wait() is a
    assert mlcomm.wait_all(reqs)[2] == res[2]


def test_wait_twice_and_repr(comm):
    x = np.ones(4)
    req = comm.allreduce(x, async_=True)
    assert "in flight" in repr(req) or "done" in repr(req)
    assert req.wait() is x
    assert req.wait() is x and req.test()
    assert "done" in repr(req)
    with pytest.raises(TypeError):
        mlcomm.Request()
    with pytest.raises(TypeError):
        mlcomm.wait_all([req, "not a request"])


def test_gc_temporary_input(comm):
    """The input exists only inside the call expression: the Request holds it."""
    n, rank = comm.size, comm.rank
    y = np.zeros(1 << 16, dtype=np.float64)
    req = comm.allreduce(np.full(1 << 16, rank + 1.0), out=y, async_=True)
    gc.collect()
    _churn()
    req.wait()
    assert (y == n * (n + 1) / 2).all()


def test_gc_dropped_request(comm):
    """A Request dropped before completion keeps its arrays until it completes; later
    progress releases them."""
    n, rank = comm.size, comm.rank
    x = np.full(4096, rank + 1, dtype=np.float32)
    y = np.zeros(4096, dtype=np.float32)
    wx = weakref.ref(x)
    comm.allreduce(x, out=y, async_=True)  # the Request is dropped at once
    del x
    gc.collect()
    _churn()
    assert wx() is not None  # held by the orphaned request
    _progress_until(lambda: mlcomm.progress() == 0, "the dropped request did not complete")
    gc.collect()
    assert wx() is None  # released once complete
    assert (y == n * (n + 1) / 2).all()


def test_gc_dropped_everything(comm):
    """Request, input and output all dropped while in flight: nothing is freed before
    the request completes, everything after."""
    inp = np.full(1000, 2.0, np.float32)
    out = np.zeros(1000, dtype=np.float32)
    win, wout = weakref.ref(inp), weakref.ref(out)
    comm.allreduce(inp, out=out, async_=True)
    del inp, out
    gc.collect()
    _churn()
    assert win() is not None and wout() is not None
    comm.barrier()  # every call also reaps dropped requests
    _progress_until(lambda: mlcomm.progress() == 0, "dropped requests did not complete")
    gc.collect()
    assert win() is None and wout() is None


def test_gc_dropped_recv(comm):
    """A dropped receive whose message comes later still lands in a live buffer."""
    n, rank = comm.size, comm.rank
    buf = np.zeros(1 << 16, dtype=np.float32)
    wbuf = weakref.ref(buf)
    comm.recv(buf, (rank - 1) % n, 11, async_=True)
    del buf
    gc.collect()
    _churn()
    comm.barrier()  # everybody has posted and dropped its receive
    comm.send(np.full(1 << 16, 3.0, np.float32), (rank + 1) % n, 11, async_=True).wait()
    _progress_until(lambda: mlcomm.progress() == 0, "the dropped receive did not complete")
    gc.collect()
    assert wbuf() is None


def test_destroy_waits_for_dropped(world):
    c = world.split(0)
    c.allreduce(np.ones(100), async_=True)  # dropped
    c.barrier(async_=True)  # dropped
    c.destroy()  # waits for them first, instead of refusing with InProgressError
    assert not c.alive
    assert mlcomm.progress() == 0


def test_test_polling(comm):
    n, rank = comm.size, comm.rank
    x = np.array([rank], dtype=np.int32)
    req = comm.allgather(x, async_=True)
    while not req.test():
        pass
    assert (req.wait().ravel() == np.arange(n)).all()
