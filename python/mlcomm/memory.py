"""mem_alloc: numpy arrays over mlcommMemAlloc memory, freed exactly once."""

import ctypes
import warnings
import weakref

import numpy as np

from . import _lib, _types
from ._args import _index
from ._calls import _byref, _call, _lock
from .comm import Comm
from .request import _orphans, _reap

_mem_live = {}  # pointer -> weakref.finalize of mlcommMemAlloc blocks not yet freed


class _Memory:
    """Owns one mlcommMemAlloc block. numpy arrays over it have it as their base, so it
    lives while any view does; when the last goes, weakref.finalize frees it once."""

    __slots__ = ("__array_interface__", "ptr", "nbytes", "__weakref__")

    def __init__(self, ptr, nbytes):
        self.ptr = ptr
        self.nbytes = nbytes
        self.__array_interface__ = {"data": (ptr, False), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}


def _mem_free(ptr, at_exit=False):
    _mem_live.pop(ptr, None)
    L = _lib.L
    if L is None:
        return
    with _lock:
        rc = L.mlcommMemFree(ptr)
        msg = _lib.last_error() if rc else ""
    if rc and not at_exit:
        warnings.warn(f"mlcomm: mlcommMemFree(0x{ptr:x}) failed: {msg}", RuntimeWarning)


def mem_alloc(comm, shape, dtype=np.float32):
    """A new numpy array over mlcommMemAlloc memory (zero-copy for the shared-memory
    transport; ordinary page-aligned memory otherwise). Contents are uninitialised. The
    memory is freed exactly once, when the array and every view of it are gone (or at
    exit). Local, not collective."""
    if not isinstance(comm, Comm):
        raise TypeError(f"mem_alloc expects an mlcomm.Comm, got {type(comm).__name__}")
    dt = _types.numpy_dtype(dtype)
    if isinstance(shape, (tuple, list)):
        shape = tuple(_index(s, "shape") for s in shape)
    else:
        shape = (_index(shape, "shape"),)
    if any(s < 0 for s in shape):
        raise ValueError(f"mem_alloc: negative dimension in shape {shape}")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes == 0:
        raise ValueError(f"mem_alloc: shape {shape} has no elements (mlcommMemAlloc needs > 0 "
                         "bytes); use np.empty for empty arrays")
    if _orphans:
        _reap()
    ptr = ctypes.c_void_p()
    _call("mlcommMemAlloc", comm._h, nbytes, _byref(ptr), comm=comm)
    owner = _Memory(ptr.value, nbytes)
    fin = weakref.finalize(owner, _mem_free, ptr.value)
    fin.atexit = False  # the package's exit handler frees what is left, in order
    _mem_live[ptr.value] = fin
    return np.asarray(owner).view(dt).reshape(shape)


def mem_outstanding():
    """How many mlcommMemAlloc blocks of this process are not yet freed."""
    return len(_mem_live)
