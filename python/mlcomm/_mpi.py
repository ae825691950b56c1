"""MPI start-up and shut-down through ctypes, and mpi4py interop.

Without mpi4py, ``Comm.world()`` initialises MPI itself: it calls ``MPI_Initialized``
and, when MPI is not running yet, ``MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED)``
through the libmpi that libmlcomm links (opened RTLD_GLOBAL, see _lib.py). Only then
does the package finalise MPI at exit. When MPI is already running (mpi4py was
imported first, or the host program initialised it), the package neither initialises
nor finalises it: mpi4py finalises at its own exit hook, which runs after Python's
atexit handlers, hence after the package has destroyed its communicators.
"""

import ctypes
import sys

from . import _lib

MPI_THREAD_SERIALIZED = 2  # the same value in Open MPI and MPICH

initialized_by_us = False


def _flag(fn_name):
    lib = _lib.load()
    flag = ctypes.c_int(0)
    getattr(lib, fn_name)(ctypes.byref(flag))
    return bool(flag.value)


def is_initialized():
    return _flag("MPI_Initialized")


def is_finalized():
    return _flag("MPI_Finalized")


def ensure_initialized():
    """Initialises MPI unless it is running; refuses after MPI_Finalize."""
    global initialized_by_us
    lib = _lib.load()
    if is_finalized():
        raise RuntimeError("mlcomm: MPI has already been finalised in this process")
    if is_initialized():
        return
    provided = ctypes.c_int(0)
    with _lib.lock:
        rc = lib.MPI_Init_thread(None, None, MPI_THREAD_SERIALIZED, ctypes.byref(provided))
    if rc != 0:
        raise RuntimeError(f"mlcomm: MPI_Init_thread failed with MPI error {rc}")
    initialized_by_us = True


def finalize_if_ours():
    """Called at exit: MPI_Finalize when this package initialised MPI."""
    global initialized_by_us
    if not initialized_by_us or _lib.L is None:
        return
    initialized_by_us = False
    if is_initialized() and not is_finalized():
        _lib.L.MPI_Finalize()


def world_handle():
    """MPI_COMM_WORLD's handle, as _lib.mpi_comm_t expects it."""
    lib = _lib.load()
    if _lib.mpi_comm_t is ctypes.c_void_p:
        # Open MPI: #define MPI_COMM_WORLD ((MPI_Comm)&ompi_mpi_comm_world)
        return ctypes.addressof(ctypes.c_char.in_dll(lib, "ompi_mpi_comm_world"))
    if "mpi4py.MPI" in sys.modules:
        return mpi4py_handle(sys.modules["mpi4py.MPI"].COMM_WORLD)
    return 0x44000000  # MPICH ABI's MPI_COMM_WORLD


def mpi4py_handle(comm):
    """The C handle of an mpi4py communicator (MPI._handleof, else MPI._addressof)."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - only without mpi4py
        raise ImportError("mlcomm: Comm.from_mpi4py needs mpi4py (Debian: python3-mpi4py)") from e
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f"from_mpi4py expects an mpi4py.MPI.Comm, got {type(comm).__name__}")
    if comm == MPI.COMM_NULL:
        raise ValueError("from_mpi4py: the communicator is MPI.COMM_NULL")
    size = MPI._sizeof(MPI.Comm)
    if size != ctypes.sizeof(_lib.mpi_comm_t):
        raise TypeError(
            f"mlcomm: mpi4py's MPI_Comm is {size} bytes but libmlcomm's MPI uses "
            f"{ctypes.sizeof(_lib.mpi_comm_t)}: mpi4py and libmlcomm were built against "
            "different MPI libraries")
    if hasattr(MPI, "_handleof"):
        return MPI._handleof(comm)
    addr = MPI._addressof(comm)
    return _lib.mpi_comm_t.from_address(addr).value
