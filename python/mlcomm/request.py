"""Requests (calls started with ``async_=True``), Status, and the bookkeeping of the
requests not yet completed.

An async call's Request holds every array it passed to C until the request has
completed. A Request dropped before completion is moved to a module-level set of
orphans, which keeps the arrays alive; later calls into the package test the orphans
and release each one as it completes (``mlcomm.progress()`` does it on demand, and
``Comm.destroy`` and exit wait for them). A request that fails where MPI may still own
its buffers, or any request of an aborted communicator, leaves its arrays in the
graveyard (see _calls.py).
"""

import collections
import ctypes
import warnings

import numpy as np

from . import _lib, _types
from ._calls import _UNSAFE, _byref, _error, _graveyard, _lock
from .errors import INTERNAL_ERROR, error_class

_c_uint64 = ctypes.c_uint64
_c_int = ctypes.c_int
_CStatus = _lib.Status

_pending = {}  # request handle -> _State, for every request not yet completed
_orphans = set()  # _States whose Request object was dropped before completion


class Status(collections.namedtuple("Status", "source tag nbytes")):
    """What a receive or probe found (``source``, ``tag``, ``nbytes``). For collectives
    and sends: source is the calling rank, tag -1, nbytes the bytes contributed."""

    __slots__ = ()

    def count(self, dtype):
        """nbytes in elements of dtype (numpy dtype or mlcomm datatype name)."""
        size = _types.size_of(_types.override_code(dtype)) if isinstance(dtype, (str, int)) \
            else np.dtype(dtype).itemsize
        return self.nbytes // size


class _State:
    """The part of a request that outlives a dropped Request object."""

    __slots__ = ("h", "keep", "result", "comm", "cstatus", "error", "done", "call", "is_recv")

    def finish(self):
        if self.error is not None:
            rc, msg, call = self.error
            raise error_class(rc)(rc, msg, call)
        if self.is_recv:
            return self.status()
        return self.result

    def status(self):
        cs = self.cstatus
        if cs is None or self.error is not None:
            return None
        if not isinstance(cs, Status):
            cs = self.cstatus = Status(cs.source, cs.tag, cs.bytes)
        return cs


def _settle(st, rc, cs, msg):
    """Records the completion of st (called once, under no particular lock)."""
    _pending.pop(st.h, None)
    _orphans.discard(st)
    st.done = True
    if rc == 0:
        st.cstatus = cs  # converted to a Status on demand
    else:
        st.error = (rc, msg, st.call)
        if rc in _UNSAFE or (st.comm is not None and st.comm._state == "aborted"):
            _graveyard.append(st.keep)
    st.keep = None


def _test_state(st):
    """mlcommTest on a state; returns (completed, rc, msg)."""
    h = _c_uint64(st.h)
    done = _c_int(0)
    cs = _CStatus()
    with _lock:
        rc = _lib.L.mlcommTest(_byref(h), _byref(done), _byref(cs))
        msg = _lib.last_error() if rc else ""
    if done.value or h.value == 0:
        _settle(st, rc, cs, msg)
        return True, rc, msg
    return False, rc, msg


def _wait_state(st):
    """mlcommWait on a state; returns (completed, rc, msg). Not completed means the
    request is still valid (a timeout, an open group)."""
    h = _c_uint64(st.h)
    cs = _CStatus()
    with _lock:
        rc = _lib.L.mlcommWait(_byref(h), _byref(cs))
        msg = _lib.last_error() if rc else ""
    if h.value == 0:
        _settle(st, rc, cs, msg)
        return True, rc, msg
    return False, rc, msg


class Request:
    """A call started with ``async_=True``. Holds the call's arrays until it completes.

    ``wait()`` returns what the blocking form returns (the output array, a Status for
    recv, None for barrier/send); ``test()`` returns True once complete. A failed
    request raises its MlcommError from ``wait()``/``test()`` (every time it is asked).
    """

    __slots__ = ("_st", "__weakref__")

    def __init__(self):
        raise TypeError("Requests come from calls made with async_=True")

    @classmethod
    def _new(cls, h, keep, result, comm, call, is_recv=False):
        st = _State()
        st.h = h
        st.keep = keep
        st.result = result
        st.comm = comm
        st.cstatus = None
        st.error = None
        st.done = False
        st.call = call
        st.is_recv = is_recv
        if h:
            _pending[h] = st
        else:  # already complete at creation is impossible in the C API; be safe
            st.done = True
            st.keep = None
        r = object.__new__(cls)
        r._st = st
        return r

    @property
    def done(self):
        """True once the request has completed (as seen by the last wait/test)."""
        return self._st.done

    @property
    def status(self):
        """Status of the completed request (None before completion or after failure)."""
        return self._st.status()

    def wait(self):
        """Waits (within the communicator's timeout) and returns the call's result.
        On MlcommTimeoutError the request stays valid and may be waited again."""
        st = self._st
        if st.done:
            return st.finish()
        if _orphans:
            _reap()
        completed, rc, msg = _wait_state(st)
        if completed:
            return st.finish()
        raise error_class(rc)(rc, msg, "mlcommWait")  # still valid (timeout, open group)

    def test(self):
        """Advances progress; True once complete (raises if it completed with a failure)."""
        st = self._st
        if st.done:
            st.finish()
            return True
        if _orphans:
            _reap()
        completed, rc, msg = _test_state(st)
        if completed:
            st.finish()
            return True
        if rc:
            raise error_class(rc)(rc, msg, "mlcommTest")
        return False

    def __del__(self):
        try:
            st = self._st
            if not st.done:
                _orphans.add(st)
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self):
        st = self._st
        state = "failed" if st.error else ("done" if st.done else "in flight")
        return f"<mlcomm.Request {st.call} {state}>"


def _start(fn, call, args, keep, result, comm, is_recv):
    """Starts an async call, fn(*args, &request) under the lock, and returns its Request
    (call: the C function's name, for errors and repr)."""
    req = _c_uint64(0)
    with _lock:
        rc = fn(*args, _byref(req))
        msg = _lib.last_error() if rc else ""
    if rc:
        raise _error(rc, call, msg, keep, comm)
    return Request._new(req.value, keep, result, comm, call, is_recv)


def _reap():
    """Tests every orphaned request once; releases the completed ones."""
    for st in list(_orphans):
        if st.done:
            _orphans.discard(st)
            continue
        completed, rc, msg = _test_state(st)
        if completed and rc and not (st.comm is not None and st.comm._state == "aborted"):
            warnings.warn(f"mlcomm: a request dropped without wait() failed: {st.call}: {msg}",
                          RuntimeWarning, stacklevel=3)


def progress():
    """Advances requests that were dropped without wait() and releases the completed
    ones. Returns how many dropped requests are still in flight."""
    if _orphans:
        _reap()
    return len(_orphans)


def wait_all(requests):
    """Waits for every request (mlcommWaitAll) and returns their results in order.

    Raises the first failure after every request that completed has been released; a
    request that completed with a failure raises again from its own wait(). On a
    timeout the requests not yet complete stay valid."""
    reqs = list(requests)
    for r in reqs:
        if not isinstance(r, Request):
            raise TypeError(f"wait_all expects mlcomm.Request objects, got {type(r).__name__}")
    if _orphans:
        _reap()
    live = list({id(r._st): r._st for r in reqs if not r._st.done}.values())
    if live:
        n = len(live)
        handles = (_c_uint64 * n)(*[st.h for st in live])
        statuses = (_CStatus * n)()
        for s in statuses:
            s.source = -2  # WaitAll fills the status of each request that succeeded
        with _lock:
            rc = _lib.L.mlcommWaitAll(n, handles, statuses)
            msg = _lib.last_error() if rc else ""
        for i, st in enumerate(live):
            if handles[i] == 0:
                if statuses[i].source != -2:
                    _settle(st, 0, statuses[i], "")
                else:
                    _settle(st, rc or INTERNAL_ERROR, None, msg)
        if rc:
            raise error_class(rc)(rc, msg, "mlcommWaitAll")
    return [r._st.finish() for r in reqs]
