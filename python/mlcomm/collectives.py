"""The collective calls of a Comm: allreduce, broadcast, reduce, allgather,
reduce_scatter and barrier (a mixin of Comm, which supplies _h, rank, size and _run)."""

import numpy as np

from . import _lib
from . import groups as _groups
from ._args import (_CODES, _OPS, _arr, _byref, _code, _from_buffer, _index, _ndarray, _op,
                    _out, _rptr, _wptr)
from ._calls import _error, _lock
from .request import _orphans, _reap


def _reduce_into(x, out, code, dtype, in_place, what):
    """(out, send pointer, receive pointer) of a reduction that writes into x (named
    in_place in errors) without out, else into out (checked: x's datatype and size)."""
    if out is None or out is x:
        p = _wptr(x, in_place)
        return x, p, p
    out = _out(out, code, x.size, dtype, "out", what)
    return out, _rptr(x), _wptr(out, "out")


class Collectives:
    """Comm's collective calls. Each checks and converts its arguments, then hands the
    call to ``self._run`` (blocking, async_=True, or prepared)."""

    __slots__ = ()

    def allreduce(self, x, op="sum", out=None, *, dtype=None, async_=False):
        """out[i] = op over all ranks of x[i]; in place (into x) without out. Returns the
        result array (a Request with async_=True). op: 'sum'|'prod'|'max'|'min'|'avg'."""
        if _orphans:
            _reap()
        # Fast path (inlined, ~1 us cheaper): plain arrays of a dtype in the table,
        # blocking, outside groups. ctypes' from_buffer itself refuses a non-contiguous,
        # read-only or empty array; those, and everything else, take the general path
        # below, which does the same checks with full messages.
        if dtype is None and not async_ and not _groups._open and type(x) is _ndarray:
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
        out, s, r = _reduce_into(x, out, code, dtype, "x (in place)", "allreduce: same as x")
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
        else:
            out, s, r = _reduce_into(x, out, code, dtype, "x (in place, on root)",
                                     "reduce: same as x")
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
