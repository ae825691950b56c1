"""Communicators, requests, memory and the life-cycle rules of the bindings.

Buffer safety (the rules docs/python.md states):

* An async call's Request holds every array it passed to C until the request has
  completed. A Request dropped before completion is moved to a module-level set of
  orphans, which keeps the arrays alive; later calls into the package test the orphans
  and release each one as it completes (``mlcomm.progress()`` does it on demand, and
  ``Comm.destroy`` and exit wait for them).
* When MPI may still own a buffer after a failure (a timeout of a blocking call,
  mlcommRemoteError / mlcommInternalError, or any request of an aborted communicator),
  the arrays are kept until the process ends instead of being freed.
* Blocking calls inside ``mlcomm.group()`` keep their arrays until the outermost
  group ends.
"""

import atexit
import collections
import ctypes
import operator
import sys
import threading
import time
import warnings
import weakref

import numpy as np

from . import _lib, _mpi, _types
from .errors import (INTERNAL_ERROR, INVALID_ARGUMENT, REMOTE_ERROR, TIMEOUT,
                     InvalidArgumentError, MlcommError, error_class)

ANY_SOURCE = -1
ANY_TAG = -1
TAG_MAX = 32767
SPLIT_NOCOLOR = -1

#: How long exit waits for requests still in flight before aborting their communicators.
EXIT_WAIT_S = 10.0

_byref = ctypes.byref
_from_buffer = ctypes.c_char.from_buffer
_c_uint64 = ctypes.c_uint64
_c_int = ctypes.c_int
_CStatus = _lib.Status
_ndarray = np.ndarray
_lock = _lib.lock
_CODES = _types._CODES
_OPS = _types.OPS
_SIZES = _types._SIZES

# Failures after which MPI may still own the buffers: keep them until exit.
_UNSAFE = frozenset((TIMEOUT, REMOTE_ERROR, INTERNAL_ERROR))

_pending = {}  # request handle -> _State, for every request not yet completed
_orphans = set()  # _States whose Request object was dropped before completion
_graveyard = []  # arrays MPI may still write: never freed (see module docstring)
_comms = {}  # handle -> Comm, live communicators in creation order
_mem_live = {}  # pointer -> weakref.finalize of mlcommMemAlloc blocks not yet freed

_tls = threading.local()
_groups_open = 0  # outermost groups open in any thread (fast check for blocking calls)


# ------------------------------------------------------------------ small helpers

class Status(collections.namedtuple("Status", "source tag nbytes")):
    """What a receive or probe found (``source``, ``tag``, ``nbytes``). For collectives
    and sends: source is the calling rank, tag -1, nbytes the bytes contributed."""

    __slots__ = ()

    def count(self, dtype):
        """nbytes in elements of dtype (numpy dtype or mlcomm datatype name)."""
        size = _SIZES[_types.override_code(dtype)] if isinstance(dtype, (str, int)) \
            else np.dtype(dtype).itemsize
        return self.nbytes // size


def _arr(x, name):
    """x as a C-contiguous ndarray, without copying; TypeError/ValueError otherwise."""
    if not isinstance(x, _ndarray):
        if x is None:
            raise TypeError(f"{name} is None; expected a numpy array")
        try:
            x = np.asarray(memoryview(x))
        except TypeError:
            raise TypeError(f"{name} must be a numpy array (or an object with the buffer "
                            f"protocol), not {type(x).__name__}") from None
    if not x.flags.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous (shape {x.shape}, strides {x.strides}); "
                         f"mlcomm never copies: pass np.ascontiguousarray({name})")
    return x


def _code(a, dtype, name):
    if dtype is None:
        c = _CODES.get(a.dtype)
        if c is None:
            c = _types.code_of(a.dtype, name)
        return c
    c = _types.override_code(dtype)
    if _SIZES[c] != a.itemsize:
        raise TypeError(f"dtype={dtype!r} has {_SIZES[c]}-byte elements but {name} has "
                        f"{a.itemsize}-byte elements ({a.dtype})")
    return c


def _rptr(a):
    """Address of a's data for C to read (None when empty). ctypes' from_buffer is the
    fastest way to it (~0.4 us against ~1.4 us for a.ctypes.data), but it needs a
    writable buffer export."""
    if not a.nbytes:
        return None
    if a.flags.writeable:
        try:
            return _byref(_from_buffer(a))
        except (TypeError, ValueError, BufferError):  # a dtype with no buffer format
            pass
    return a.ctypes.data


def _wptr(a, name):
    """Address of a's data for C to write; ValueError when a is read-only."""
    if not a.flags.writeable:
        raise ValueError(f"{name} is read-only; mlcomm writes the result there")
    if not a.nbytes:
        return None
    try:
        return _byref(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def _out(out, code, count, dtype, name, what):
    """Checks an out= array: contiguous, writable, same datatype, count elements."""
    out = _arr(out, name)
    if _code(out, dtype, name) != code:
        raise TypeError(f"{name} has dtype {out.dtype}, expected the input's datatype "
                        f"({_types.TYPE_NAMES[code]})")
    if out.size != count:
        raise ValueError(f"{name} has {out.size} elements, expected {count} ({what})")
    return out


def _index(v, name):
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(v).__name__}") from None


def _op(op):
    c = _OPS.get(op)
    return _types.op_code(op) if c is None else c


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


def _config(transport, timeout_ms, debug_level):
    if transport is None and timeout_ms is None and debug_level is None:
        return None
    cfg = _lib.new_config()
    if transport is not None:
        cfg.transport = _types.transport_code(transport)
    if timeout_ms is not None:
        cfg.timeoutMs = _index(timeout_ms, "timeout_ms")
    if debug_level is not None:
        cfg.debugLevel = _index(debug_level, "debug_level")
    return cfg


# ------------------------------------------------------------------ requests

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
        h = _c_uint64(st.h)
        cs = _CStatus()
        with _lock:
            rc = _lib.L.mlcommWait(_byref(h), _byref(cs))
            msg = _lib.last_error() if rc else ""
        if h.value == 0:
            _settle(st, rc, cs, msg)
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
        h = _c_uint64(st.h)
        done = _c_int(0)
        cs = _CStatus()
        with _lock:
            rc = _lib.L.mlcommTest(_byref(h), _byref(done), _byref(cs))
            msg = _lib.last_error() if rc else ""
        if done.value or h.value == 0:
            _settle(st, rc, cs, msg)
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


# ------------------------------------------------------------------ groups

def group_start():
    """mlcommGroupStart: calls until the matching group_end are recorded, then started
    together (so a ring of blocking send+recv cannot deadlock). Per thread, nestable."""
    global _groups_open
    lib = _lib.load()
    with _lock:
        _check(lib.mlcommGroupStart(), "mlcommGroupStart")
    depth = getattr(_tls, "depth", 0)
    if depth == 0:
        _tls.keep = []
        _groups_open += 1
    _tls.depth = depth + 1


def group_end():
    """mlcommGroupEnd: the outermost one starts the recorded calls and waits for the
    blocking ones (their arrays are kept alive until then)."""
    global _groups_open
    lib = _lib.load()
    with _lock:
        rc = lib.mlcommGroupEnd()
        msg = _lib.last_error() if rc else ""
    depth = getattr(_tls, "depth", 0)
    if depth > 0:
        _tls.depth = depth - 1
        if depth == 1:
            keep, _tls.keep = _tls.keep, []
            _groups_open -= 1
            if rc in _UNSAFE:
                _graveyard.append(keep)
    if rc:
        raise error_class(rc)(rc, msg, "mlcommGroupEnd")


class group:
    """``with mlcomm.group(): ...`` brackets calls with group_start()/group_end().

    Inside a group, blocking calls return at once and do their work at the end of the
    outermost group; a blocking recv then returns None (use async_=True to get its
    Status from the Request)."""

    def __enter__(self):
        group_start()
        return self

    def __exit__(self, *exc):
        group_end()
        return False


# ------------------------------------------------------------------ communicators

class Comm:
    """An mlcomm communicator. Create it with ``Comm.world()``,
    ``Comm.from_mpi4py(mpi_comm)`` or ``comm.split(...)``; free it with ``destroy()``
    (collective) or ``abort()``, or use it as a context manager. The garbage collector
    never destroys a communicator (destruction is collective); exit destroys the ones
    left, in reverse creation order."""

    __slots__ = ("_h", "rank", "size", "_state", "__weakref__")

    def __init__(self):
        raise TypeError("use mlcomm.Comm.world(), Comm.from_mpi4py(comm) or comm.split()")

    # -------------------------------------------------------------- creation

    @classmethod
    def _wrap(cls, handle):
        c = object.__new__(cls)
        c._h = handle
        c._state = "live"
        r = _c_int()
        n = _c_int()
        with _lock:
            _check(_lib.L.mlcommCommRank(handle, _byref(r)), "mlcommCommRank")
            _check(_lib.L.mlcommCommCount(handle, _byref(n)), "mlcommCommCount")
        c.rank = r.value
        c.size = n.value
        _comms[handle] = c
        return c

    @classmethod
    def _from_handle(cls, mpi_handle, transport, timeout_ms, debug_level):
        lib = _lib.load()
        cfg = _config(transport, timeout_ms, debug_level)
        out = _lib.c_comm()
        with _lock:
            rc = lib.mlcommCommInitFromMPI(_byref(out), mpi_handle,
                                           _byref(cfg) if cfg is not None else None)
            _check(rc, "mlcommCommInitFromMPI")
        return cls._wrap(out.value)

    @classmethod
    def world(cls, *, transport=None, timeout_ms=None, debug_level=None):
        """A new communicator over MPI_COMM_WORLD (collective). Initialises MPI when it is
        not running (and then finalises it at exit). transport: 'auto'|'mpi'|'shm'|'nccl';
        timeout_ms: bound on every wait (0 = none); unset values come from MLCOMM_*."""
        _lib.load()
        _mpi.ensure_initialized()
        return cls._from_handle(_mpi.world_handle(), transport, timeout_ms, debug_level)

    @classmethod
    def from_mpi4py(cls, comm, *, transport=None, timeout_ms=None, debug_level=None):
        """A new communicator with the ranks of an mpi4py communicator (collective over
        it). mlcomm duplicates it, so your traffic on it never meets mlcomm's."""
        _lib.load()
        handle = _mpi.mpi4py_handle(comm)
        return cls._from_handle(handle, transport, timeout_ms, debug_level)

    def split(self, color, key=None, *, transport=None, timeout_ms=None, debug_level=None):
        """Collective: ranks with the same color (>= 0) form a new Comm ordered by key
        (default: rank). color None or SPLIT_NOCOLOR returns None on this rank. Without
        transport/timeout_ms/debug_level the new Comm inherits this one's settings."""
        if _orphans:
            _reap()
        color = SPLIT_NOCOLOR if color is None else _index(color, "color")
        key = self.rank if key is None else _index(key, "key")
        cfg = _config(transport, timeout_ms, debug_level)
        out = _lib.c_comm()
        with _lock:
            rc = _lib.L.mlcommCommSplit(self._h, color, key, _byref(out),
                                        _byref(cfg) if cfg is not None else None)
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommCommSplit", msg, comm=self)
        return None if not out.value else Comm._wrap(out.value)

    # -------------------------------------------------------------- life cycle

    def destroy(self):
        """mlcommCommDestroy (collective). Dropped requests on this Comm are waited for
        first; requests you still hold must be completed, else InProgressError (and the
        Comm stays valid). A no-op on a destroyed or aborted Comm."""
        if self._h is None:
            return
        for st in [s for s in _orphans if s.comm is self]:
            if not st.done:
                h = _c_uint64(st.h)
                cs = _CStatus()
                with _lock:
                    rc = _lib.L.mlcommWait(_byref(h), _byref(cs))
                    msg = _lib.last_error() if rc else ""
                if h.value == 0:
                    _settle(st, rc, cs, msg)
                else:
                    raise error_class(rc)(rc, msg, "mlcommWait (a dropped request, in destroy)")
        with _lock:
            _check(_lib.L.mlcommCommDestroy(self._h), "mlcommCommDestroy")
        _comms.pop(self._h, None)
        self._h = None
        self._state = "destroyed"

    def abort(self):
        """mlcommCommAbort: local and immediate. Every request in flight fails with
        RemoteError; their arrays are kept until exit, since MPI may still write them."""
        if self._h is None:
            return
        with _lock:
            _check(_lib.L.mlcommCommAbort(self._h), "mlcommCommAbort")
        for st in list(_pending.values()):
            if st.comm is self and st.keep is not None:
                _graveyard.append(st.keep)
        _comms.pop(self._h, None)
        self._h = None
        self._state = "aborted"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.destroy()
        else:
            try:
                self.destroy()
            except MlcommError:
                self.abort()
        return False

    @property
    def handle(self):
        """The mlcommComm_t as an int (None once destroyed), for C extensions."""
        return self._h

    @property
    def alive(self):
        return self._h is not None

    @property
    def config(self):
        """The settings in force: {'transport': str, 'timeout_ms': int, 'debug_level': int}."""
        cfg = _lib.new_config()
        with _lock:
            rc = _lib.L.mlcommCommGetConfig(self._h, _byref(cfg))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommCommGetConfig", msg, comm=self)
        return {"transport": _types.TRANSPORT_NAMES.get(cfg.transport, cfg.transport),
                "timeout_ms": cfg.timeoutMs, "debug_level": cfg.debugLevel}

    @property
    def mpi_handle(self):
        """mlcommCommGetMPI: the MPI_Comm this Comm was created from, as an int."""
        out = _lib.mpi_comm_t()
        with _lock:
            rc = _lib.L.mlcommCommGetMPI(self._h, _byref(out))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommCommGetMPI", msg, comm=self)
        return out.value

    def __repr__(self):
        if self._h is None:
            return f"<mlcomm.Comm {self._state}>"
        return f"<mlcomm.Comm rank {self.rank} of {self.size}>"

    # -------------------------------------------------------------- the call itself

    def _run(self, name, args, keep, result, async_, is_recv=False):
        L = _lib.L
        if async_ is _PREPARE:
            return PreparedCall._new(self, name, args, keep, result, is_recv)
        if async_:
            req = _c_uint64(0)
            with _lock:
                rc = getattr(L, name + "Async")(*args, _byref(req))
                msg = _lib.last_error() if rc else ""
            if rc:
                raise _error(rc, name + "Async", msg, keep, self)
            return Request._new(req.value, keep, result, self, name + "Async", is_recv)
        with _lock:
            rc = getattr(L, name)(*args)
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, name, msg, keep, self)
        if _groups_open and getattr(_tls, "depth", 0) > 0:
            _tls.keep.append(keep)
            if is_recv:
                return None
        return result

    # -------------------------------------------------------------- collectives

    def allreduce(self, x, op="sum", out=None, *, dtype=None, async_=False):
        """out[i] = op over all ranks of x[i]; in place (into x) without out. Returns the
        result array (a Request with async_=True). op: 'sum'|'prod'|'max'|'min'|'avg'."""
        if _orphans:
            _reap()
        # Fast path (inlined, ~1 us cheaper): plain arrays of a dtype in the table,
        # blocking, outside groups. ctypes' from_buffer itself refuses a non-contiguous,
        # read-only or empty array; those, and everything else, take the general path
        # below, which does the same checks with full messages.
        if dtype is None and not async_ and not _groups_open and type(x) is _ndarray:
            code = _CODES.get(x.dtype)
            opc = _OPS.get(op)
            if code is not None and opc is not None:
                try:
                    if out is None or out is x:
                        p = _byref(_from_buffer(x))
                        args = (p, p, x.size, code, opc, self._h)
                        res = x
                    elif type(out) is _ndarray and out.dtype == x.dtype and out.size == x.size:
                        args = (_byref(_from_buffer(x)), _byref(_from_buffer(out)), x.size,
                                code, opc, self._h)
                        res = out
                    else:
                        args = None
                except (TypeError, ValueError, BufferError):
                    args = None
                if args is not None:
                    with _lock:
                        rc = _lib.L.mlcommAllReduce(*args)
                        msg = _lib.last_error() if rc else ""
                    if rc:
                        raise _error(rc, "mlcommAllReduce", msg, (x, res), self)
                    return res
        x = _arr(x, "x")
        code = _code(x, dtype, "x")
        opc = _op(op)
        if out is None or out is x:
            out = x
            s = r = _wptr(x, "x (in place)")
        else:
            out = _out(out, code, x.size, dtype, "out", "allreduce: same as x")
            s = _rptr(x)
            r = _wptr(out, "out")
        return self._run("mlcommAllReduce", (s, r, x.size, code, opc, self._h), (x, out), out,
                         async_)

    def broadcast(self, x, root=0, out=None, *, dtype=None, async_=False):
        """Every rank receives root's x. Without out: in place (x is sent on root and
        overwritten elsewhere). With out: root sends x into every rank's out (x is
        ignored, and may be None, elsewhere). Returns the received array."""
        if _orphans:
            _reap()
        root = _index(root, "root")
        is_root = root == self.rank
        if out is None:
            x = _arr(x, "x")
            code = _code(x, dtype, "x")
            out = x
            s = r = _rptr(x) if is_root else _wptr(x, "x (in place, not root)")
            count = x.size
        elif is_root:
            x = _arr(x, "x")
            code = _code(x, dtype, "x")
            out = _out(out, code, x.size, dtype, "out", "broadcast: same as root's x")
            s = _rptr(x)
            r = _wptr(out, "out")
            count = x.size
        else:
            out = _arr(out, "out")
            code = _code(out, dtype, "out")
            s = None
            r = _wptr(out, "out")
            count = out.size
        return self._run("mlcommBroadcast", (s, r, count, code, root, self._h), (x, out), out,
                         async_)

    def reduce(self, x, op="sum", root=0, out=None, *, dtype=None, async_=False):
        """root receives op over all ranks of x: into out, or into x without out (in
        place). Returns the result array on root and None elsewhere (out is neither
        needed nor written there)."""
        if _orphans:
            _reap()
        root = _index(root, "root")
        opc = _op(op)
        x = _arr(x, "x")
        code = _code(x, dtype, "x")
        if root != self.rank:
            s = _rptr(x)
            r = None
            out = None
        elif out is None or out is x:
            out = x
            s = r = _wptr(x, "x (in place, on root)")
        else:
            out = _out(out, code, x.size, dtype, "out", "reduce: same as x")
            s = _rptr(x)
            r = _wptr(out, "out")
        return self._run("mlcommReduce", (s, r, x.size, code, opc, root, self._h), (x, out),
                         out, async_)

    def allgather(self, x, out=None, *, dtype=None, async_=False):
        """out (size x x.size elements) receives every rank's x in rank order. Without
        out, a new array of shape (size,) + x.shape. In place: pass x=None and out; this
        rank's block of out is its contribution."""
        if _orphans:
            _reap()
        n = self.size
        if x is None:
            if out is None:
                raise TypeError("allgather: x and out are both None")
            out = _arr(out, "out")
            code = _code(out, dtype, "out")
            if out.size % n:
                raise ValueError(f"allgather in place: out has {out.size} elements, not a "
                                 f"multiple of the communicator size {n}")
            count = out.size // n
            x = out.reshape(-1)[self.rank * count:(self.rank + 1) * count]
        else:
            x = _arr(x, "x")
            code = _code(x, dtype, "x")
            count = x.size
            if out is None:
                out = np.empty((n,) + x.shape, dtype=x.dtype)
            else:
                out = _out(out, code, n * count, dtype, "out",
                           f"allgather: {n} ranks x {count} elements of x")
        s = _rptr(x)
        r = _wptr(out, "out")
        return self._run("mlcommAllGather", (s, r, count, code, self._h), (x, out), out, async_)

    def reduce_scatter(self, x, op="sum", out=None, *, dtype=None, async_=False):
        """x holds size equal blocks; this rank's out receives block ``rank`` of their
        reduction over all ranks. Without out, a new array (shape x.shape[1:] when
        x.shape[0] == size, else x.size // size elements). In place: pass
        out = x.reshape(size, -1)[rank]."""
        if _orphans:
            _reap()
        n = self.size
        x = _arr(x, "x")
        code = _code(x, dtype, "x")
        opc = _op(op)
        if x.size % n:
            raise ValueError(f"reduce_scatter: x has {x.size} elements, not a multiple of the "
                             f"communicator size {n}")
        count = x.size // n
        if out is None:
            if x.ndim >= 1 and x.shape[0] == n:
                shape = x.shape[1:]
            elif x.ndim >= 1 and x.shape[0] % n == 0:
                shape = (x.shape[0] // n,) + x.shape[1:]
            else:
                shape = (count,)
            out = np.empty(shape, dtype=x.dtype)
        else:
            out = _out(out, code, count, dtype, "out",
                       f"reduce_scatter: x's {x.size} elements / {n} ranks")
        r = _wptr(out, "out")
        s = _rptr(x)
        return self._run("mlcommReduceScatter", (s, r, count, code, opc, self._h), (x, out),
                         out, async_)

    def barrier(self, *, async_=False):
        """Returns once every rank has entered the barrier."""
        if _orphans:
            _reap()
        return self._run("mlcommBarrier", (self._h,), None, None, async_)

    # -------------------------------------------------------------- point to point

    def send(self, x, dest, tag=0, *, dtype=None, async_=False):
        """Sends x to rank dest with tag (0..TAG_MAX)."""
        if _orphans:
            _reap()
        x = _arr(x, "x")
        code = _code(x, dtype, "x")
        return self._run("mlcommSend",
                         (_rptr(x), x.size, code, _index(dest, "dest"), _index(tag, "tag"),
                          self._h), x, None, async_)

    def recv(self, out, source=ANY_SOURCE, tag=ANY_TAG, *, dtype=None, async_=False):
        """Receives a message of at most out.size elements into out from source (or
        ANY_SOURCE) with tag (or ANY_TAG). Returns a Status(source, tag, nbytes). A
        message larger than out is refused (InvalidArgumentError) and stays queued."""
        if _orphans:
            _reap()
        out = _arr(out, "out")
        code = _code(out, dtype, "out")
        r = _wptr(out, "out")
        source = _index(source, "source")
        tag = _index(tag, "tag")
        if async_:
            return self._run("mlcommRecv", (r, out.size, code, source, tag, self._h), out, None,
                             async_, is_recv=True)
        cs = _CStatus()
        in_group = _groups_open and getattr(_tls, "depth", 0) > 0
        if in_group:  # filled at group end: keep the struct alive with the array
            keep = (out, cs)
        else:
            keep = out
        with _lock:
            rc = _lib.L.mlcommRecv(r, out.size, code, source, tag, self._h, _byref(cs))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommRecv", msg, keep, self)
        if in_group:
            _tls.keep.append(keep)
            return None
        return Status(cs.source, cs.tag, cs.bytes)

    def probe(self, source=ANY_SOURCE, tag=ANY_TAG):
        """Blocks until a matching message is available; returns its Status without
        receiving it (the next matching recv gets exactly that message)."""
        if _orphans:
            _reap()
        cs = _CStatus()
        with _lock:
            rc = _lib.L.mlcommProbe(_index(source, "source"), _index(tag, "tag"), self._h,
                                    _byref(cs))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommProbe", msg, comm=self)
        return Status(cs.source, cs.tag, cs.bytes)

    def iprobe(self, source=ANY_SOURCE, tag=ANY_TAG):
        """As probe, but returns at once: a Status, or None when nothing matches yet."""
        if _orphans:
            _reap()
        cs = _CStatus()
        found = _c_int(0)
        with _lock:
            rc = _lib.L.mlcommIprobe(_index(source, "source"), _index(tag, "tag"), self._h,
                                     _byref(found), _byref(cs))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, "mlcommIprobe", msg, comm=self)
        return Status(cs.source, cs.tag, cs.bytes) if found.value else None

    # -------------------------------------------------------------- prepared calls

    def prepare(self, method, *args, **kwargs):
        """Checks and converts a data call's arguments once, for a hot loop that repeats
        it on the same arrays: ``call = comm.prepare("allreduce", x, op="avg", out=y)``,
        then ``call()`` (blocking; returns what the call returns) or ``call.start()``
        (a Request). method: allreduce, broadcast, reduce, allgather, reduce_scatter,
        barrier, send or recv; the other arguments are that method's. The PreparedCall
        holds the arrays; each run costs about a bare ctypes call."""
        if method not in _PREPARABLE:
            raise ValueError(f"prepare: {method!r} is not one of {', '.join(_PREPARABLE)}")
        if "async_" in kwargs:
            raise TypeError("prepare: pass no async_; use call() or call.start()")
        return getattr(self, method)(*args, async_=_PREPARE, **kwargs)

    # -------------------------------------------------------------- memory

    def mem_alloc(self, shape, dtype=np.float32):
        """Same as mlcomm.mem_alloc(self, shape, dtype)."""
        return mem_alloc(self, shape, dtype)


# ------------------------------------------------------------------ prepared calls

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
        in_group = _groups_open and getattr(_tls, "depth", 0) > 0
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
        req = _c_uint64(0)
        with _lock:
            rc = self._afn(*self._args, _byref(req))
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, self._name + "Async", msg, self._keep, self._comm)
        return Request._new(req.value, self._keep, self._result, self._comm,
                            self._name + "Async", self._is_recv)

    def __repr__(self):
        return f"<mlcomm.PreparedCall {self._name}>"


# ------------------------------------------------------------------ memory

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
    with _lock:
        rc = _lib.L.mlcommMemAlloc(comm._h, nbytes, _byref(ptr))
        msg = _lib.last_error() if rc else ""
    if rc:
        raise _error(rc, "mlcommMemAlloc", msg, comm=comm)
    owner = _Memory(ptr.value, nbytes)
    fin = weakref.finalize(owner, _mem_free, ptr.value)
    fin.atexit = False  # the package's exit handler frees what is left, in order
    _mem_live[ptr.value] = fin
    return np.asarray(owner).view(dt).reshape(shape)


def mem_outstanding():
    """How many mlcommMemAlloc blocks of this process are not yet freed."""
    return len(_mem_live)


# ------------------------------------------------------------------ exit

def _shutdown():
    """atexit: finish or abort requests, destroy communicators (reverse creation order),
    free mlcommMemAlloc memory, then MPI_Finalize if this package initialised MPI."""
    if _lib.L is None:
        return
    try:
        if _mpi.is_initialized() and not _mpi.is_finalized():
            deadline = time.monotonic() + EXIT_WAIT_S
            while _pending and time.monotonic() < deadline:
                for st in list(_pending.values()):
                    _test_state(st)
                if _pending:
                    time.sleep(0.001)
            stuck = {id(st.comm) for st in _pending.values()}
            if _pending:
                sys.stderr.write(f"mlcomm: {len(_pending)} request(s) still in flight at exit "
                                 f"after {EXIT_WAIT_S:g} s; aborting their communicators\n")
            for c in reversed(list(_comms.values())):
                try:
                    if id(c) in stuck:
                        c.abort()
                    else:
                        c.destroy()
                except MlcommError:
                    try:
                        c.abort()
                    except MlcommError:
                        pass
        for ptr, fin in list(_mem_live.items()):
            if fin.detach() is not None:
                _mem_free(ptr, at_exit=True)
    finally:
        _mpi.finalize_if_ours()


atexit.register(_shutdown)
