"""Every collective, every datatype, against numpy references: in place, out=, async."""

import numpy as np
import pytest

import mlcomm
from helpers import DTYPES, OPS, as_float, assert_result, make, reduce_ref, values

N = 37  # odd, so no call happens to be a multiple of anything


@pytest.mark.parametrize("name", DTYPES)
def test_allreduce(comm, name):
    n, rank = comm.size, comm.rank
    for op in OPS:
        expected = reduce_ref(name, op, [values(r, N, name) for r in range(n)])
        # in place, returns x itself
        x = make(name, values(rank, N, name))
        assert comm.allreduce(x, op=op) is x
        assert_result(name, x, expected, op)
        # out of place: x untouched
        x = make(name, values(rank, N, name))
        before = x.copy()
        y = np.full_like(x, 99)
        assert comm.allreduce(x, op, out=y) is y
        assert_result(name, y, expected, op)
        np.testing.assert_array_equal(x, before)
        # async, in place
        x = make(name, values(rank, N, name))
        req = comm.allreduce(x, op=op, async_=True)
        assert isinstance(req, mlcomm.Request)
        assert req.wait() is x
        assert req.done
        assert req.status == mlcomm.Status(rank, -1, x.nbytes)
        assert_result(name, x, expected, op)


@pytest.mark.parametrize("name", DTYPES)
def test_broadcast(comm, name):
    n, rank = comm.size, comm.rank
    for root in range(n):
        ref = make(name, values(root, N, name, seed=1))
        # in place: root's x is sent, everybody else's overwritten
        x = make(name, values(rank, N, name, seed=1)) if rank == root else np.zeros_like(ref)
        assert comm.broadcast(x, root=root) is x
        np.testing.assert_array_equal(x, ref)
        # out=: root's x is read, every out written; x may be None off root
        out = np.zeros_like(ref)
        src = make(name, values(rank, N, name, seed=1)) if rank == root else None
        assert comm.broadcast(src, root=root, out=out) is out
        np.testing.assert_array_equal(out, ref)
        # async
        x = make(name, values(rank, N, name, seed=1)) if rank == root else np.zeros_like(ref)
        req = comm.broadcast(x, root, async_=True)
        assert req.wait() is x
        np.testing.assert_array_equal(x, ref)


@pytest.mark.parametrize("name", DTYPES)
def test_reduce(comm, name):
    n, rank = comm.size, comm.rank
    root = n - 1
    for op in ("sum", "max", "avg"):
        expected = reduce_ref(name, op, [values(r, N, name) for r in range(n)])
        # in place on root; None elsewhere, x untouched there
        x = make(name, values(rank, N, name))
        before = x.copy()
        res = comm.reduce(x, op=op, root=root)
        if rank == root:
            assert res is x
            assert_result(name, x, expected, op)
        else:
            assert res is None
            np.testing.assert_array_equal(x, before)
        # out= (out is ignored, and not written, off root)
        x = make(name, values(rank, N, name))
        out = np.zeros_like(x)
        res = comm.reduce(x, op=op, root=root, out=out)
        if rank == root:
            assert res is out
            assert_result(name, out, expected, op)
        else:
            assert res is None
            assert not out.any()
        # async, root 0
        x = make(name, values(rank, N, name))
        res = comm.reduce(x, op, 0, async_=True).wait()
        if rank == 0:
            assert_result(name, res, expected, op)
        else:
            assert res is None


@pytest.mark.parametrize("name", DTYPES)
def test_allgather(comm, name):
    n, rank = comm.size, comm.rank
    blocks = [make(name, values(r, N, name, seed=2)) for r in range(n)]
    ref = np.stack(blocks)
    x = blocks[rank].copy()
    # new output: shape (n,) + x.shape
    out = comm.allgather(x)
    assert out.shape == (n, N) and out.dtype == x.dtype
    np.testing.assert_array_equal(out, ref)
    # out= of any shape with n*N elements
    out = np.zeros(n * N, dtype=x.dtype)
    assert comm.allgather(x, out=out) is out
    np.testing.assert_array_equal(out, ref.ravel())
    # in place: x=None, this rank's block of out is its contribution
    out = np.zeros((n, N), dtype=x.dtype)
    out[rank] = blocks[rank]
    assert comm.allgather(None, out=out) is out
    np.testing.assert_array_equal(out, ref)
    # in place by passing the block itself
    out = np.zeros((n, N), dtype=x.dtype)
    out[rank] = blocks[rank]
    comm.allgather(out[rank], out=out)
    np.testing.assert_array_equal(out, ref)
    # async
    out = comm.allgather(x, async_=True).wait()
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("name", DTYPES)
def test_reduce_scatter(comm, name):
    n, rank = comm.size, comm.rank
    for op in ("sum", "min", "avg"):
        per_rank = [values(r, n * N, name, seed=3) for r in range(n)]
        expected = reduce_ref(name, op, per_rank).reshape(n, N)[rank]
        # new output: shape x.shape[1:] when x.shape[0] == n
        x = make(name, per_rank[rank]).reshape(n, N)
        out = comm.reduce_scatter(x, op=op)
        assert out.shape == (N,)
        assert_result(name, out, expected, op)
        # out=
        x = make(name, per_rank[rank])
        out = np.zeros(N, dtype=x.dtype)
        assert comm.reduce_scatter(x, op, out=out) is out
        assert_result(name, out, expected, op)
        # in place: out is this rank's block of x
        x = make(name, per_rank[rank]).reshape(n, N)
        block = x[rank]
        assert comm.reduce_scatter(x, op, out=block) is block
        assert_result(name, x[rank], expected, op)
        # async
        x = make(name, per_rank[rank])
        out = comm.reduce_scatter(x, op, async_=True).wait()
        assert_result(name, out, expected, op)


def test_barrier(comm):
    assert comm.barrier() is None
    req = comm.barrier(async_=True)
    assert req.wait() is None
    assert req.status == mlcomm.Status(comm.rank, -1, 0)


def test_count_zero(comm):
    e = np.zeros(0, np.float32)
    assert comm.allreduce(e) is e
    assert comm.broadcast(e, root=0).size == 0
    comm.reduce(e, root=0)
    assert comm.allgather(e).shape == (comm.size, 0)
    assert comm.reduce_scatter(np.zeros(0, np.float32)).size == 0
    assert comm.allreduce(e, async_=True).wait() is e


def test_shapes(comm):
    n, rank = comm.size, comm.rank
    x = np.full((3, 4, 5), rank + 1, dtype=np.float64)
    comm.allreduce(x)
    assert x.shape == (3, 4, 5) and (x == n * (n + 1) / 2).all()
    g = comm.allgather(np.full((2, 3), rank, dtype=np.int32))
    assert g.shape == (n, 2, 3) and all((g[r] == r).all() for r in range(n))
    rs = comm.reduce_scatter(np.ones((2 * n, 3), dtype=np.float32))
    assert rs.shape == (2, 3) and (rs == n).all()
    rs = comm.reduce_scatter(np.ones((6, n), dtype=np.float32))  # 6 % n == 0 for n <= 3
    assert rs.shape == (6 // n, n) and (rs == n).all()
    rs = comm.reduce_scatter(np.ones(5 * n, dtype=np.float32))
    assert rs.shape == (5,)


def test_large_float32(comm):
    """1 Mi elements (4 MiB): the library's ring/chunked paths, still exact."""
    n, rank = comm.size, comm.rank
    x = (np.arange(1 << 20, dtype=np.float32) % 1000) * (rank + 1)
    ref = (np.arange(1 << 20, dtype=np.float32) % 1000) * (n * (n + 1) / 2)
    y = np.empty_like(x)
    comm.allreduce(x, out=y)
    np.testing.assert_array_equal(y, ref)


def test_bfloat16_override(comm):
    """dtype='bfloat16' makes any 2-byte array travel as bfloat16 bits."""
    n = comm.size
    bits = mlcomm.to_bfloat16(np.full(8, 1.5, np.float32)).view(np.uint16)
    assert bits.dtype == np.uint16 and bits.dtype.metadata is None
    comm.allreduce(bits, dtype="bfloat16")
    np.testing.assert_array_equal(mlcomm.from_bfloat16(bits), np.full(8, 1.5 * n, np.float32))
    as_i16 = mlcomm.to_bfloat16(np.full(4, 2.0, np.float32)).view(np.int16)
    comm.allreduce(as_i16, op="max", dtype=mlcomm.bfloat16)
    np.testing.assert_array_equal(mlcomm.from_bfloat16(as_i16), np.full(4, 2.0, np.float32))
    # float16 bits held in a uint16 array
    h = np.full(4, 0.5, np.float16).view(np.uint16)
    comm.allreduce(h, dtype="float16")
    np.testing.assert_array_equal(h.view(np.float16), np.full(4, 0.5 * n, np.float16))


def test_bfloat16_helpers():
    f = np.array([0.0, 1.0, -2.5, 3.140625, 1e30, -np.inf, np.inf, 1.00390625, 1.01171875],
                 dtype=np.float32)
    b = mlcomm.to_bfloat16(f)
    assert b.dtype == mlcomm.bfloat16 and b.dtype.itemsize == 2
    back = mlcomm.from_bfloat16(b)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back[:4], f[:4])
    assert np.isinf(back[5]) and np.isinf(back[6])
    # ties round to even: 1 + 2^-8 -> 1.0, 1 + 3*2^-8 -> 1 + 2^-6
    assert back[7] == 1.0 and back[8] == np.float32(1.015625)
    assert np.isnan(mlcomm.from_bfloat16(mlcomm.to_bfloat16(np.float32([np.nan]))))[0]
    assert as_float("bfloat16", b)[1] == 1.0


def test_ml_dtypes_bfloat16(comm):
    """ml_dtypes.bfloat16 arrays (JAX's dtype) travel as bfloat16 without dtype=."""
    ml_dtypes = pytest.importorskip("ml_dtypes")  # the same answer on every rank
    x = np.full(6, 1.25, dtype=ml_dtypes.bfloat16)
    comm.allreduce(x)
    np.testing.assert_array_equal(x.astype(np.float32), np.full(6, 1.25 * comm.size, np.float32))


def test_buffer_protocol_objects(comm):
    """A bytearray is wrapped without copying: the in-place result lands in it."""
    n = comm.size
    b = bytearray([1, 2, 3])
    assert comm.allreduce(b, op="sum").base is not None
    assert list(b) == [n, 2 * n, 3 * n]
    with pytest.raises(ValueError, match="read-only"):
        comm.allreduce(b"abc")  # bytes: a buffer, but read-only, so refused as output
    # read-only buffers work as inputs
    out = np.zeros(3, np.uint8)
    comm.allreduce(memoryview(b"\x01\x01\x01"), out=out)
    assert list(out) == [n] * 3
