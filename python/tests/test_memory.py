"""mlcomm.mem_alloc: numpy arrays over mlcommMemAlloc memory, freed exactly once."""

import gc
import warnings

import numpy as np

import mlcomm


def test_mem_alloc_basic(comm):
    n, rank = comm.size, comm.rank
    before = mlcomm.mem_outstanding()
    a = mlcomm.mem_alloc(comm, (3, 5), np.float64)
    assert a.shape == (3, 5) and a.dtype == np.float64 and a.flags.c_contiguous
    assert a.flags.writeable
    assert a.ctypes.data % 64 == 0
    assert mlcomm.mem_outstanding() == before + 1
    a[:] = rank + 1
    comm.allreduce(a)
    assert (a == n * (n + 1) / 2).all()
    out = comm.mem_alloc(15, "float64")
    comm.allreduce(a, op="max", out=out)
    assert (out == n * (n + 1) / 2).all()
    del a, out
    gc.collect()
    assert mlcomm.mem_outstanding() == before


def test_views_keep_memory_alive(comm):
    before = mlcomm.mem_outstanding()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = mlcomm.mem_alloc(comm, 1000, np.int32)
        a[:] = np.arange(1000)
        v = a[10:20]
        w = a.reshape(10, 100)[3]
        del a
        gc.collect()
        assert mlcomm.mem_outstanding() == before + 1
        np.testing.assert_array_equal(v, np.arange(10, 20))
        v[:] = -1
        del v
        gc.collect()
        assert mlcomm.mem_outstanding() == before + 1  # w still refers to it
        np.testing.assert_array_equal(w, np.arange(300, 400))
        del w
        gc.collect()
        assert mlcomm.mem_outstanding() == before  # freed once, when the last view went
    assert not [c for c in caught if "mlcommMemFree" in str(c.message)]


def test_mem_in_flight_request(comm):
    """Drop every reference to mem_alloc arrays while a request uses them."""
    n, rank = comm.size, comm.rank
    before = mlcomm.mem_outstanding()
    x = mlcomm.mem_alloc(comm, 4096, np.float32)
    x[:] = rank + 1
    y = mlcomm.mem_alloc(comm, 4096, np.float32)
    keep_result = np.zeros(4096, np.float32)
    req = comm.allreduce(x, out=y, async_=True)
    del x, y
    gc.collect()
    assert mlcomm.mem_outstanding() == before + 2
    res = req.wait()
    keep_result[:] = res
    del res, req
    gc.collect()
    assert mlcomm.mem_outstanding() == before
    assert (keep_result == n * (n + 1) / 2).all()


def test_mem_bfloat16_and_after_destroy(world):
    c = world.split(0)
    n = c.size
    b = mlcomm.mem_alloc(c, 8, mlcomm.bfloat16)
    assert b.dtype == mlcomm.bfloat16
    b[:] = mlcomm.to_bfloat16(np.full(8, 0.25, np.float32))
    c.allreduce(b)  # travels as bfloat16 without dtype=
    np.testing.assert_array_equal(mlcomm.from_bfloat16(b), np.full(8, 0.25 * n, np.float32))
    before = mlcomm.mem_outstanding()
    c.destroy()
    b[:] = 0  # the memory outlives its communicator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del b
        gc.collect()
    assert mlcomm.mem_outstanding() == before - 1
    assert not caught
