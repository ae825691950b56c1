"""Error paths: Python-side TypeError/ValueError before C, MlcommError subclasses from
the library (code + sentence), timeouts, destroy/abort."""

import gc
import pickle
import re
import weakref

import numpy as np
import pytest

import mlcomm


def _python_side(exc_type, fn):
    """fn must raise exc_type from Python, never an MlcommError."""
    with pytest.raises(exc_type) as ei:
        fn()
    assert not isinstance(ei.value, mlcomm.MlcommError)
    return ei.value


def test_type_errors(comm):
    f32 = np.zeros(4, np.float32)
    _python_side(TypeError, lambda: comm.allreduce([1.0, 2.0]))
    e = _python_side(TypeError, lambda: comm.allreduce(np.zeros(4, np.int16)))
    assert "bfloat16" in str(e)  # the hint
    _python_side(TypeError, lambda: comm.allreduce(np.zeros(4, np.complex64)))
    _python_side(TypeError, lambda: comm.allreduce(np.zeros(4, bool)))
    _python_side(TypeError, lambda: comm.allreduce(np.zeros(4, object)))
    _python_side(TypeError, lambda: comm.allreduce(np.zeros(4, ">f4")))
    _python_side(TypeError, lambda: comm.allreduce(f32, out=np.zeros(4, np.float64)))
    _python_side(TypeError, lambda: comm.allreduce(f32, dtype="bfloat16"))  # 4-byte elements
    _python_side(TypeError, lambda: comm.allreduce(f32, dtype="complex"))
    _python_side(TypeError, lambda: comm.broadcast(None, root=0))
    _python_side(TypeError, lambda: comm.allgather(None))
    _python_side(TypeError, lambda: comm.send(f32, "zero"))
    _python_side(TypeError, lambda: comm.recv(f32, 0, tag=1.5))
    _python_side(TypeError, lambda: mlcomm.mem_alloc(comm, 4, np.complex128))
    _python_side(TypeError, lambda: mlcomm.mem_alloc("comm", 4))
    comm.barrier()  # nothing reached C: the communicator is fine


def test_value_errors(comm):
    n = comm.size
    f32 = np.zeros(12, np.float32)
    _python_side(ValueError, lambda: comm.allreduce(f32[::2]))  # not contiguous
    _python_side(ValueError, lambda: comm.allreduce(np.zeros((4, 4), np.float32).T))
    _python_side(ValueError, lambda: comm.allreduce(f32, out=np.zeros(11, np.float32)))
    ro = np.zeros(12, np.float32)
    ro.flags.writeable = False
    _python_side(ValueError, lambda: comm.allreduce(f32, out=ro))
    _python_side(ValueError, lambda: comm.allreduce(ro))  # in place into a read-only array
    comm.allreduce(ro, out=f32)  # a read-only input is fine
    _python_side(ValueError, lambda: comm.allreduce(f32, op="mean"))
    _python_side(ValueError, lambda: comm.allgather(f32, out=np.zeros(12 * n + 1, np.float32)))
    if n > 1:  # local checks: ranks may differ here without breaking collective order
        _python_side(ValueError, lambda: comm.reduce_scatter(np.zeros(n * 3 + 1, np.float32)))
    _python_side(ValueError, lambda: comm.reduce_scatter(np.zeros(n * 3, np.float32),
                                                         out=np.zeros(4, np.float32)))
    _python_side(ValueError, lambda: mlcomm.mem_alloc(comm, (0, 3)))
    _python_side(ValueError, lambda: mlcomm.mem_alloc(comm, -1))
    _python_side(ValueError, lambda: mlcomm.Comm.world(transport="carrier pigeon"))
    comm.barrier()


def test_library_errors_carry_code_and_sentence(comm):
    n = comm.size
    with pytest.raises(mlcomm.InvalidArgumentError) as ei:
        comm.broadcast(np.zeros(3), root=n + 4)
    e = ei.value
    assert e.code == 1 and e.name == "invalid argument" and e.call == "mlcommBroadcast"
    assert f"root is {n + 4}" in e.detail and e.detail in str(e)
    with pytest.raises(mlcomm.InvalidArgumentError, match="tag is 40000"):
        comm.send(np.zeros(3), 0, tag=40000)
    with pytest.raises(mlcomm.InvalidArgumentError, match="tag is 40000"):
        comm.send(np.zeros(3), 0, tag=40000, async_=True)
    with pytest.raises(mlcomm.InvalidArgumentError):
        comm.recv(np.zeros(3), source=n + 1)
    with pytest.raises(mlcomm.InvalidArgumentError):
        comm.iprobe(tag=-5)
    # exceptions survive pickling with their fields
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is mlcomm.InvalidArgumentError and e2.detail == e.detail and e2.code == 1
    assert issubclass(mlcomm.MlcommTimeoutError, mlcomm.MlcommError)
    comm.barrier()  # argument errors leave the communicator usable


def test_config_errors(world):
    # collective: every rank passes the same bad value, so every rank fails
    with pytest.raises(mlcomm.InvalidArgumentError, match="timeoutMs is -1"):
        mlcomm.Comm.world(timeout_ms=-1)
    with pytest.raises(mlcomm.InvalidArgumentError, match="color is -5"):
        world.split(-5)
    assert world.split(None) is None and world.split(mlcomm.SPLIT_NOCOLOR) is None
    # a transport this build may lack: created, or refused with UnsupportedError
    try:
        c = mlcomm.Comm.world(transport="nccl")
    except mlcomm.MlcommError as e:
        assert e.code in (mlcomm.UnsupportedError.code, mlcomm.RemoteError.code)
        assert "nccl" in e.detail or "another rank" in e.detail
    else:
        c.destroy()


def test_timeout_recv_probe(world):
    """A receive nothing matches times out and is withdrawn: the Comm stays usable."""
    c = world.split(0, timeout_ms=300)
    buf = np.zeros(4, np.int32)
    with pytest.raises(mlcomm.MlcommTimeoutError) as ei:
        c.recv(buf, source=c.rank, tag=3)
    assert ei.value.code == 5 and re.search(r"timed out after \d+ ms", ei.value.detail)
    with pytest.raises(mlcomm.MlcommTimeoutError):
        c.probe(c.rank, 3)
    # still usable: a message to itself (local, so the ranks' drift cannot time it out)
    req = c.send(np.arange(4, dtype=np.int32), c.rank, 3, async_=True)
    assert c.recv(buf, c.rank, 3).nbytes == 16
    req.wait()
    np.testing.assert_array_equal(buf, np.arange(4))
    c.destroy()


def test_async_timeout_then_complete(world):
    """An async request that times out in wait() stays valid; it can complete later."""
    c = world.split(0, timeout_ms=200)
    buf = np.zeros(4, np.int32)
    req = c.recv(buf, c.rank, 4, async_=True)
    with pytest.raises(mlcomm.MlcommTimeoutError):
        req.wait()
    assert not req.done
    with pytest.raises(mlcomm.InProgressError):
        c.destroy()  # refused: the receive is still in flight
    assert c.alive
    c.send(np.arange(4, dtype=np.int32), c.rank, 4, async_=True).wait()
    assert req.wait() == mlcomm.Status(c.rank, 4, 16)
    np.testing.assert_array_equal(buf, np.arange(4))
    c.destroy()


def test_abort_keeps_buffers(world):
    c = world.split(0)
    buf = np.zeros(8, np.int32)
    wbuf = weakref.ref(buf)
    req = c.recv(buf, c.rank, 9, async_=True)
    c.abort()
    assert not c.alive
    with pytest.raises(mlcomm.RemoteError):
        req.wait()
    with pytest.raises(mlcomm.RemoteError):
        req.wait()  # the stored failure, again
    del buf, req
    gc.collect()
    assert wbuf() is not None  # MPI may still own it: kept until exit
    with pytest.raises(mlcomm.InvalidArgumentError, match="aborted"):
        c.barrier()
    c.abort()  # no-op
    c.destroy()  # no-op


def test_use_after_destroy(world):
    c = world.split(0)
    c.destroy()
    with pytest.raises(mlcomm.InvalidArgumentError, match="destroyed"):
        c.allreduce(np.zeros(2))
    with pytest.raises(mlcomm.InvalidArgumentError):
        c.config
    c.destroy()  # no-op
