"""mlcomm: Python bindings (pure ctypes) for libmlcomm.

    import numpy as np, mlcomm
    comm = mlcomm.Comm.world()                  # or mlcomm.Comm.from_mpi4py(MPI.COMM_WORLD)
    x = np.random.rand(1 << 20).astype(np.float32)
    comm.allreduce(x, op="sum")                 # in place; or out=y
    req = comm.allreduce(x, op="avg", async_=True); ...; req.wait()

See docs/python.md for the whole API, and the rules on buffers, requests, MPI start-up
and shut-down.
"""

from . import _atexit  # noqa: F401  (importing it registers the exit handler)
from . import _lib
from .comm import ANY_SOURCE, ANY_TAG, SPLIT_NOCOLOR, TAG_MAX, Comm
from .groups import group, group_end, group_start
from .memory import mem_alloc, mem_outstanding
from .prepared import PreparedCall
from .request import Request, Status, progress, wait_all
from ._types import bfloat16, from_bfloat16, to_bfloat16
from .errors import (InProgressError, InternalError, InvalidArgumentError,
                     LibraryNotFoundError, MlcommError, MlcommSystemError, MlcommTimeoutError,
                     RemoteError, UnsupportedError)

__all__ = [
    "ANY_SOURCE", "ANY_TAG", "SPLIT_NOCOLOR", "TAG_MAX", "Comm", "PreparedCall", "Request",
    "Status",
    "group", "group_start", "group_end", "mem_alloc", "mem_outstanding", "progress",
    "wait_all", "bfloat16", "to_bfloat16", "from_bfloat16", "MlcommError",
    "InvalidArgumentError", "MlcommSystemError", "InternalError", "RemoteError",
    "MlcommTimeoutError", "InProgressError", "UnsupportedError", "LibraryNotFoundError",
    "load_library", "library_path", "version", "__version__",
]

__version__ = "0.1.0"


def load_library(path=None):
    """Loads libmlcomm now and returns the path loaded. With path, that file is used
    (call this before anything else in the package); without, the usual search runs:
    MLCOMM_LIBRARY, the build tree, the copy meson installed with the package, then
    the system."""
    _lib.set_explicit_path(path)
    _lib.load()
    return _lib.path


def library_path():
    """The path of the loaded libmlcomm (loading it if needed)."""
    _lib.load()
    return _lib.path


def version():
    """The loaded library's version as (major, minor, patch)."""
    v = _lib.version()
    return (v // 10000, v // 100 % 100, v % 100)
