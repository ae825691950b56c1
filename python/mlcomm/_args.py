"""Checking and converting the Python arguments of a call before anything reaches C.

Wrong arguments raise TypeError/ValueError here, never MlcommError. Arrays are never
copied: a non-contiguous one is refused.
"""

import ctypes
import operator

import numpy as np

from . import _lib, _types

_byref = ctypes.byref
_from_buffer = ctypes.c_char.from_buffer
_ndarray = np.ndarray
_CODES = _types._CODES
_OPS = _types.OP_CODES


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
    size = _types.size_of(c)
    if size != a.itemsize:
        raise TypeError(f"dtype={dtype!r} has {size}-byte elements but {name} has "
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
                        f"({_types.type_name(code)}, {_types.size_of(code)}-byte elements)")
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


def _config(transport, timeout_ms, debug_level):
    """The mlcommConfig_t for a call's keyword arguments (None when all are None)."""
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
