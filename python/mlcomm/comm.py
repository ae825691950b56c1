"""Comm: creating and freeing communicators, the call machinery (blocking, async,
prepared), point-to-point calls and prepare(). The collectives are in collectives.py.

The garbage collector never destroys a communicator (destruction is collective); exit
destroys the ones left, in reverse creation order (see _atexit.py).
"""

import ctypes

import numpy as np

from . import _lib, _mpi, _types
from . import groups as _groups
from ._args import _arr, _code, _config, _index, _rptr, _wptr
from ._calls import _byref, _call, _check, _error, _graveyard, _lock
from .collectives import Collectives
from .errors import MlcommError, error_class
from .groups import _tls
from .prepared import _PREPARABLE, _PREPARE, PreparedCall
from .request import Status, _orphans, _pending, _reap, _start, _wait_state

ANY_SOURCE = -1
ANY_TAG = -1
TAG_MAX = 32767
SPLIT_NOCOLOR = -1

_c_int = ctypes.c_int
_CStatus = _lib.Status

_comms = {}  # handle -> Comm, live communicators in creation order


class Comm(Collectives):
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
        _call("mlcommCommSplit", self._h, color, key, _byref(out),
              _byref(cfg) if cfg is not None else None, comm=self)
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
                completed, rc, msg = _wait_state(st)
                if not completed:
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

    def revoke(self):
        """mlcommCommRevoke: local and immediate. Every pending and later call on this
        Comm fails with RemoteError, here and soon on every surviving peer, naming the
        rank that failed first. The Comm stays valid until destroy (which then frees it
        as abort does); build one of the survivors with shrink()."""
        _call("mlcommCommRevoke", self._h, comm=self)
        for st in list(_pending.values()):
            if st.comm is self and st.keep is not None:
                _graveyard.append(st.keep)

    def shrink(self):
        """mlcommCommShrink (collective over the survivors): revokes this Comm and returns
        a new Comm of every rank still alive, in order, with this one's settings. Only
        within one node (UnsupportedError otherwise, naming a rank on another node)."""
        out = _lib.c_comm()
        _call("mlcommCommShrink", self._h, _byref(out), comm=self)
        return Comm._wrap(out.value)

    @property
    def failed_rank(self):
        """The first rank seen to fail (mlcommCommFailedRank), or None."""
        r = ctypes.c_int(-1)
        _call("mlcommCommFailedRank", self._h, _byref(r), comm=self)
        return None if r.value < 0 else r.value

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
        _call("mlcommCommGetConfig", self._h, _byref(cfg), comm=self)
        return {"transport": _types.transport_name(cfg.transport),
                "timeout_ms": cfg.timeoutMs, "debug_level": cfg.debugLevel}

    @property
    def mpi_handle(self):
        """mlcommCommGetMPI: the MPI_Comm this Comm was created from, as an int."""
        out = _lib.mpi_comm_t()
        _call("mlcommCommGetMPI", self._h, _byref(out), comm=self)
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
            return _start(getattr(L, name + "Async"), name + "Async", args, keep, result, self,
                          is_recv)
        # The steps of _calls._call, inlined: every blocking data call comes here.
        with _lock:
            rc = getattr(L, name)(*args)
            msg = _lib.last_error() if rc else ""
        if rc:
            raise _error(rc, name, msg, keep, self)
        if _groups._open and getattr(_tls, "depth", 0) > 0:
            _tls.keep.append(keep)
            if is_recv:
                return None
        return result

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
        in_group = _groups._open and getattr(_tls, "depth", 0) > 0
        if in_group:  # filled at group end: keep the struct alive with the array
            keep = (out, cs)
        else:
            keep = out
        _call("mlcommRecv", r, out.size, code, source, tag, self._h, _byref(cs), keep=keep,
              comm=self)
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
        _call("mlcommProbe", _index(source, "source"), _index(tag, "tag"), self._h,
              _byref(cs), comm=self)
        return Status(cs.source, cs.tag, cs.bytes)

    def iprobe(self, source=ANY_SOURCE, tag=ANY_TAG):
        """As probe, but returns at once: a Status, or None when nothing matches yet."""
        if _orphans:
            _reap()
        cs = _CStatus()
        found = _c_int(0)
        _call("mlcommIprobe", _index(source, "source"), _index(tag, "tag"), self._h,
              _byref(found), _byref(cs), comm=self)
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
        from .memory import mem_alloc  # memory.py imports this module for its type check
        return mem_alloc(self, shape, dtype)
