"""comm.prepare: a data call checked once and run many times on the same arrays."""

import gc
import weakref

import numpy as np
import pytest

import mlcomm


def test_prepared_allreduce(comm):
    n, rank = comm.size, comm.rank
    x = np.zeros(100, np.float32)
    y = np.zeros(100, np.float32)
    call = comm.prepare("allreduce", x, op="sum", out=y)
    assert isinstance(call, mlcomm.PreparedCall) and "mlcommAllReduce" in repr(call)
    for step in range(3):
        x[:] = rank + step
        assert call() is y
        assert (y == n * (n - 1) / 2 + n * step).all()
    x[:] = 1
    req = call.start()
    assert req.wait() is y and (y == n).all()
    # in place, and the prepared call keeps its arrays alive and unmovable
    z = np.ones(10, np.int64)
    wz = weakref.ref(z)
    inplace = comm.prepare("allreduce", z, op="max")
    with pytest.raises(ValueError):
        z.resize(20)  # numpy refuses: the buffer is exported to the prepared call
    del z
    gc.collect()
    assert wz() is not None
    assert (inplace() == 1).all()
    del inplace
    gc.collect()
    assert wz() is None


def test_prepared_every_kind(comm):
    n, rank = comm.size, comm.rank
    root = n - 1
    b = np.full(4, rank, np.int32)
    bc = comm.prepare("broadcast", b, root=root)
    assert (bc() == root).all()
    rd = comm.prepare("reduce", np.ones(3), op="sum", root=root)
    res = rd()
    assert (res == n).all() if rank == root else res is None
    ag = comm.prepare("allgather", np.array([rank], np.uint8))
    assert (ag().ravel() == np.arange(n)).all()
    rs = comm.prepare("reduce_scatter", np.ones(2 * n, np.float64), op="sum")
    assert (rs() == n).all()
    assert comm.prepare("barrier")() is None
    # point to point, async through start(), blocking receive through call()
    out = np.zeros(5, np.float32)
    recv = comm.prepare("recv", out, (rank - 1) % n, tag=4)
    send = comm.prepare("send", np.full(5, rank, np.float32), (rank + 1) % n, tag=4)
    for _ in range(2):
        out[:] = -1
        r, s = recv.start(), send.start()
        st, _ = mlcomm.wait_all([r, s])
        assert st == mlcomm.Status((rank - 1) % n, 4, 20) and (out == (rank - 1) % n).all()
    s = send.start()
    assert recv() == mlcomm.Status((rank - 1) % n, 4, 20)
    s.wait()


def test_prepared_errors(world):
    c = world.split(0)
    with pytest.raises(ValueError):
        c.prepare("probe")
    with pytest.raises(TypeError):
        c.prepare("allreduce", np.ones(2), async_=True)
    with pytest.raises(TypeError):
        c.prepare("allreduce", np.ones(2, np.int16))  # checked at prepare time
    call = c.prepare("allreduce", np.ones(2))
    c.destroy()
    with pytest.raises(mlcomm.InvalidArgumentError, match="destroyed"):
        call()
    with pytest.raises(mlcomm.InvalidArgumentError, match="destroyed"):
        call.start()
    with pytest.raises(TypeError):
        mlcomm.PreparedCall()
