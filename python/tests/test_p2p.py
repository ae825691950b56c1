"""send / recv / probe / iprobe and groups."""

import numpy as np
import pytest

import mlcomm
from helpers import DTYPES, make, values


@pytest.mark.parametrize("name", ["int8", "uint64", "float16", "float64", "bfloat16"])
def test_ring_in_group(comm, name):
    """A ring of blocking send+recv inside a group cannot deadlock (1 rank: to itself)."""
    n, rank = comm.size, comm.rank
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    x = make(name, values(rank, 11, name))
    out = np.zeros_like(x)
    with mlcomm.group():
        assert comm.send(x, nxt, tag=3) is None
        assert comm.recv(out, prv, tag=3) is None  # status comes at group end: use async
    np.testing.assert_array_equal(out, make(name, values(prv, 11, name)))


def test_async_sendrecv_status(comm):
    n, rank = comm.size, comm.rank
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    x = np.arange(rank + 2, dtype=np.int32)  # rank-dependent length
    out = np.full(n + 4, -1, dtype=np.int32)
    rr = comm.recv(out, mlcomm.ANY_SOURCE, mlcomm.ANY_TAG, async_=True)
    sr = comm.send(x, nxt, tag=100 + rank, async_=True)
    st, none = mlcomm.wait_all([rr, sr])
    assert none is None
    assert st == mlcomm.Status(prv, 100 + prv, 4 * (prv + 2))
    assert st.count(np.int32) == prv + 2 and st.count("int32") == prv + 2
    np.testing.assert_array_equal(out[:prv + 2], np.arange(prv + 2))
    assert (out[prv + 2:] == -1).all()  # a short message leaves the rest untouched
    assert rr.status == st
    assert sr.status == mlcomm.Status(rank, -1, x.nbytes)


def test_blocking_sendrecv(comm):
    """Blocking recv returns a Status; even ranks send first, odd ones receive first."""
    n, rank = comm.size, comm.rank
    if n == 1:
        req = comm.send(np.ones(3), 0, tag=1, async_=True)
        st = comm.recv(np.zeros(3), 0, 1)
        req.wait()
        assert st == mlcomm.Status(0, 1, 24)
        return
    peer = rank ^ 1
    buf = np.zeros(5, dtype=np.uint8)
    if peer >= n:  # odd count: the last rank talks to itself
        req = comm.send(np.arange(5, dtype=np.uint8), rank, 9, async_=True)
        st = comm.recv(buf, rank, 9)
        req.wait()
    elif rank % 2 == 0:
        comm.send(np.arange(5, dtype=np.uint8), peer, 9)
        st = comm.recv(buf, peer, 9)
    else:
        st = comm.recv(buf, peer, 9)
        comm.send(np.arange(5, dtype=np.uint8), peer, 9)
    assert st.nbytes == 5 and st.tag == 9
    np.testing.assert_array_equal(buf, np.arange(5))


def test_probe_iprobe(comm):
    n, rank = comm.size, comm.rank
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    assert comm.iprobe(mlcomm.ANY_SOURCE, 77) is None  # never sent
    sreq = comm.send(np.arange(rank + 1, dtype=np.int64), nxt, tag=5, async_=True)
    st = comm.probe(mlcomm.ANY_SOURCE, 5)
    assert st == mlcomm.Status(prv, 5, 8 * (prv + 1))
    st2 = comm.iprobe(prv, 5)  # probing again describes the same message
    assert st2 == st
    buf = np.empty(st.count(np.int64), dtype=np.int64)
    got = comm.recv(buf, st.source, st.tag)
    assert got == st
    np.testing.assert_array_equal(buf, np.arange(prv + 1))
    sreq.wait()
    comm.barrier()
    assert comm.iprobe() is None


def test_too_large_is_refused_and_kept(comm):
    n, rank = comm.size, comm.rank
    nxt, prv = (rank + 1) % n, (rank - 1) % n
    sreq = comm.send(np.arange(4, dtype=np.int32), nxt, tag=6, async_=True)
    small = np.full(2, -1, dtype=np.int32)
    comm.probe(prv, 6)  # make sure it has arrived
    with pytest.raises(mlcomm.InvalidArgumentError) as ei:
        comm.recv(small, prv, 6)
    assert ei.value.code == 1 and "not received" in ei.value.detail
    assert (small == -1).all()  # nothing written on failure
    big = np.zeros(4, dtype=np.int32)
    assert comm.recv(big, prv, 6).nbytes == 16
    np.testing.assert_array_equal(big, np.arange(4))
    sreq.wait()


def test_zero_byte_message(comm):
    n, rank = comm.size, comm.rank
    sreq = comm.send(np.zeros(0, np.float32), (rank + 1) % n, tag=8, async_=True)
    st = comm.recv(np.zeros(0, np.float32), (rank - 1) % n, 8)
    assert st.nbytes == 0 and st.source == (rank - 1) % n
    sreq.wait()


@pytest.mark.parametrize("name", DTYPES)
def test_every_dtype_p2p(comm, name):
    n, rank = comm.size, comm.rank
    x = make(name, values(rank, 9, name))
    out = np.zeros_like(x)
    reqs = [comm.recv(out, (rank - 1) % n, 2, async_=True),
            comm.send(x, (rank + 1) % n, 2, async_=True)]
    mlcomm.wait_all(reqs)
    np.testing.assert_array_equal(out, make(name, values((rank - 1) % n, 9, name)))
