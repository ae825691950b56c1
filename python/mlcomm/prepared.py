"""Prepared calls: a data call whose arguments were checked and converted once
(``comm.prepare(...)``), for hot loops that repeat it on the same arrays."""

from . import _lib
from . import groups as _groups
from ._calls import _byref, _error, _lock
from .errors import INVALID_ARGUMENT, InvalidArgumentError
from .groups import _tls
from .request import Status, _orphans, _reap, _start

_CStatus = _lib.Status

_PREPARE = object()  # the async_ value that makes a data method return a PreparedCall
_PREPARABLE = ("allreduce", "broadcast", "reduce", "allgather", "reduce_scatter", "barrier",
               "send", "recv")


class PreparedCall:
    """A data call whose arguments were checked and converted once (``comm.prepare``).
    ``call()`` runs it blocking and returns what the method returns; ``call.start()``
    starts it and returns a Request. It holds its arrays (and a buffer export of the
    writable ones, so numpy cannot move them) for as long as it lives."""

    __slots__ = ("_comm", "_h", "_name", "_fn", "_afn", "_args", "_keep", "_result",
                 "_is_recv")

    def __init__(self):
        raise TypeError("PreparedCalls come from comm.prepare(...)")

    @classmethod
    def _new(cls, comm, name, args, keep, result, is_recv):
        c = object.__new__(cls)
        c._comm = comm
        c._h = comm._h
        c._name = name
        c._fn = getattr(_lib.L, name)
        c._afn = getattr(_lib.L, name + "Async")
        c._args = args
        c._keep = keep
        c._result = result
        c._is_recv = is_recv
        return c

    def _dead(self):
        comm = self._comm
        return InvalidArgumentError(INVALID_ARGUMENT, f"this Comm was {comm._state}; prepare "
                                    "the call again on a live communicator", self._name)

    def __call__(self):
        if _orphans:
            _reap()
        if self._comm._h is None:
            raise self._dead()
        in_group = _groups._open and getattr(_tls, "depth", 0) > 0
        # The steps of _calls._call, inlined: this is the hot path.
        if self._is_recv:
            cs = _CStatus()
            with _lock:
                rc = self._fn(*self._args, _byref(cs))
                msg = _lib.last_error() if rc else ""
            keep = (self._keep, cs) if in_group else self._keep
        else:
            with _lock:
                rc = self._fn(*self._args)
                msg = _lib.last_error() if rc else ""
            keep = self._keep
        if rc:
            raise _error(rc, self._name, msg, keep, self._comm)
        if in_group:
            _tls.keep.append(keep)
            return None if self._is_recv else self._result
        if self._is_recv:
            return Status(cs.source, cs.tag, cs.bytes)
        return self._result

    def start(self):
        """Starts the call; returns a Request (as the method with async_=True)."""
        if _orphans:
            _reap()
        if self._comm._h is None:
            raise self._dead()
        return _start(self._afn, self._name + "Async", self._args, self._keep, self._result,
                      self._comm, self._is_recv)

    def __repr__(self):
        return f"<mlcomm.PreparedCall {self._name}>"
