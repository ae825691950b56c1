"""Calling into libmlcomm: the exception for a failed call, and the graveyard.

Every call into the library is made under ``_lib.lock``. When a call fails in a way
after which MPI may still own its buffers (a timeout of a blocking call,
mlcommRemoteError / mlcommInternalError), its arrays go to the graveyard: they are
kept until the process ends instead of being freed.
"""

import ctypes

from . import _lib
from .errors import INTERNAL_ERROR, INVALID_ARGUMENT, REMOTE_ERROR, TIMEOUT, error_class

_byref = ctypes.byref
_lock = _lib.lock

# Failures after which MPI may still own the buffers: keep them until exit.
_UNSAFE = frozenset((TIMEOUT, REMOTE_ERROR, INTERNAL_ERROR))

_graveyard = []  # arrays MPI may still write: never freed


def _error(rc, call, msg, keep=None, comm=None):
    """The exception for a failed call; parks keep in the graveyard when MPI may still
    own those buffers."""
    if keep is not None and rc in _UNSAFE:
        _graveyard.append(keep)
    if comm is not None and comm._h is None and rc == INVALID_ARGUMENT:
        msg = f"this Comm was {comm._state}; create a new one ({msg})"
    return error_class(rc)(rc, msg, call)


def _check(rc, call):
    """Raises for a failed result of a call made under the lock (reads the sentence)."""
    if rc:
        raise error_class(rc)(rc, _lib.last_error(), call)


def _call(name, *args, keep=None, comm=None):
    """Calls libmlcomm's name(*args) under the lock; on failure raises _error's
    exception (keep and comm as there). For calls off the hot paths: allreduce's fast
    path, Comm._run and PreparedCall inline the same steps to save a Python call."""
    with _lock:
        rc = getattr(_lib.L, name)(*args)
        msg = _lib.last_error() if rc else ""
    if rc:
        raise _error(rc, name, msg, keep, comm)
