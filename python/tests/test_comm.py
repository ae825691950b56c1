"""Communicators: world, split, configuration, context manager, mpi4py interop."""

import os

import numpy as np
import pytest

import mlcomm


def test_world_matches_launcher(world):
    assert world.rank == int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    assert world.size == int(os.environ.get("OMPI_COMM_WORLD_SIZE", 1))
    assert world.alive and isinstance(world.handle, int)
    assert repr(world) == f"<mlcomm.Comm rank {world.rank} of {world.size}>"
    assert mlcomm.version() >= (0, 1, 0)
    assert os.path.exists(mlcomm.library_path())
    if os.environ.get("MLCOMM_LIBRARY"):
        assert os.path.samefile(mlcomm.library_path(), os.environ["MLCOMM_LIBRARY"])
    with pytest.raises(TypeError):
        mlcomm.Comm()


def test_split_even_odd_reversed(world):
    n, rank = world.size, world.rank
    c = world.split(rank % 2, key=-rank)  # reversed order inside each half
    members = [r for r in range(n) if r % 2 == rank % 2]
    assert c.size == len(members)
    assert c.rank == sorted(members, reverse=True).index(rank)
    g = c.allgather(np.array([rank], np.int32)).ravel()
    assert list(g) == sorted(members, reverse=True)
    c.destroy()


def test_split_nocolor_and_config(world):
    rank = world.rank
    c = world.split(None if rank == 0 and world.size > 1 else 1,
                    transport="mpi", timeout_ms=12345, debug_level=0)
    if rank == 0 and world.size > 1:
        assert c is None
    else:
        assert c.config == {"transport": "mpi", "timeout_ms": 12345, "debug_level": 0}
        child = c.split(0)  # no settings: inherits
        assert child.config["timeout_ms"] == 12345
        child.destroy()
        c.destroy()
    w = mlcomm.Comm.world(timeout_ms=777)
    assert w.config["timeout_ms"] == 777 and w.config["transport"] in ("auto", "mpi")
    w.destroy()


def test_context_manager_and_mpi_handle(world):
    with world.split(0) as c:
        assert c.alive
        c.barrier()
    assert not c.alive
    # the world communicator was created from MPI_COMM_WORLD
    h = world.mpi_handle
    assert isinstance(h, int) and h != 0


def test_from_mpi4py(world):
    MPI = pytest.importorskip("mpi4py.MPI")  # the same answer on every rank
    assert MPI.Is_initialized()
    c = mlcomm.Comm.from_mpi4py(MPI.COMM_WORLD, timeout_ms=20000)
    assert (c.rank, c.size) == (MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size())
    assert c.mpi_handle == MPI._handleof(MPI.COMM_WORLD)
    x = np.full(5, c.rank + 1.0)
    ref = np.empty_like(x)
    MPI.COMM_WORLD.Allreduce(x, ref, op=MPI.SUM)  # mpi4py's traffic never meets mlcomm's
    c.allreduce(x)
    np.testing.assert_array_equal(x, ref)
    c.destroy()
    # a communicator mpi4py made
    sub = MPI.COMM_WORLD.Split(c.rank % 2, -c.rank)
    s = mlcomm.Comm.from_mpi4py(sub)
    assert (s.rank, s.size) == (sub.Get_rank(), sub.Get_size())
    s.barrier()
    s.destroy()
    sub.Free()
    with pytest.raises(TypeError):
        mlcomm.Comm.from_mpi4py("COMM_WORLD")
    with pytest.raises(ValueError):
        mlcomm.Comm.from_mpi4py(MPI.COMM_NULL)


def test_revoke_then_shrink(world):
    # A communicator of its own, so the world communicator the other tests share stays usable.
    c = world.split(0)
    x = np.ones(5, np.float32)
    if c.rank == 0:
        c.revoke()
        c.revoke()  # a no-op
    # every rank fails: rank 0 at once, the others once rank 0's notice arrives
    with pytest.raises(mlcomm.RemoteError) as info:
        c.allreduce(x)
    assert "revoked" in str(info.value) and "rank 0" in str(info.value)
    assert c.failed_rank is None  # nobody died
    # nobody died, so the shrunk communicator holds everyone
    s = c.shrink()
    assert (s.rank, s.size) == (c.rank, c.size)
    assert s.allreduce(x)[0] == c.size
    s.destroy()
    c.destroy()
    assert not c.alive
