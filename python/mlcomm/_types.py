"""numpy dtype <-> mlcommDataType_t; the library's names and sizes of datatypes,
reduction ops and transports; bfloat16 helpers."""

import ctypes
import operator

import numpy as np

from . import _lib

# mlcommDataType_t (the header's values, part of the ABI)
INT8, UINT8, INT32, UINT32, INT64, UINT64, FLOAT16, FLOAT32, FLOAT64, BFLOAT16 = range(10)

#: numpy has no bfloat16. This dtype is 2-byte unsigned storage (the raw bfloat16 bits)
#: tagged with metadata, so arrays created with it (``np.zeros(n, mlcomm.bfloat16)``,
#: ``mlcomm.to_bfloat16(x)``, ``mlcomm.mem_alloc(comm, n, mlcomm.bfloat16)``) are sent
#: as mlcommBfloat16. numpy drops the tag in arithmetic and most views; pass
#: ``dtype="bfloat16"`` to any call to say that a 2-byte array holds bfloat16 bits.
#: ``ml_dtypes.bfloat16`` arrays are recognised too.
bfloat16 = np.dtype(np.uint16, metadata={"mlcomm": "bfloat16"})

# Fast path: exact dtype objects -> codes. Native byte order only; dtypes that compare
# equal (np.dtype('l') == int64) hash equal, so aliases hit too.
_CODES = {
    np.dtype(np.int8): INT8,
    np.dtype(np.uint8): UINT8,
    np.dtype(np.int32): INT32,
    np.dtype(np.uint32): UINT32,
    np.dtype(np.int64): INT64,
    np.dtype(np.uint64): UINT64,
    np.dtype(np.float16): FLOAT16,
    np.dtype(np.float32): FLOAT32,
    np.dtype(np.float64): FLOAT64,
}
_DTYPES = {c: dt for dt, c in _CODES.items()}  # code -> the numpy dtype mem_alloc makes
_DTYPES[BFLOAT16] = bfloat16

# Names and sizes are the library's (mlcommTypeName, mlcommTypeSize, ...), so Python
# accepts and prints exactly the spellings of the C API and the benchmarks. They are
# read once, when first needed: {"type"|"op"|"transport": {code: name}}, {code: bytes}.
_names = {}
_SIZES = {}
# name -> code as the library's ...FromName answered, keyed by the caller's spelling;
# only accepted names are kept. The call fast paths read OP_CODES directly.
_TYPE_CODES = {}
OP_CODES = {}
_TRANSPORT_CODES = {}


def _enum_names(fn):
    """{value: name} of one of the library's enums: their values run from 0 without a
    gap (mlcomm.h), and the name functions answer "unknown" past the last one."""
    out = {}
    for v in range(256):
        s = fn(v)
        if not s or s == b"unknown":
            break
        out[v] = s.decode("utf-8", "replace")
    return out


def _tables():
    if not _names:
        lib = _lib.load()
        with _lib.lock:
            types = _enum_names(lib.mlcommTypeName)
            n = ctypes.c_size_t()
            for c in types:
                if lib.mlcommTypeSize(c, ctypes.byref(n)) == 0:
                    _SIZES[c] = n.value
            found = {"type": types, "op": _enum_names(lib.mlcommRedOpName),
                     "transport": _enum_names(lib.mlcommTransportName)}
        _names.update(found)
    return _names


def _from_name(func, name, cache):
    """(code, None) for a name the library's func accepts, else (None, its sentence)."""
    code = cache.get(name)
    if code is not None:
        return code, None
    if "\0" in name:
        return None, f"{name!r} contains a NUL character"
    lib = _lib.load()
    out = ctypes.c_int()
    with _lib.lock:
        rc = getattr(lib, func)(name.encode("utf-8", "replace"), ctypes.byref(out))
        msg = _lib.last_error() if rc else ""
    if rc:
        return None, msg[len(func) + 2:] if msg.startswith(func + ": ") else msg
    cache[name] = out.value
    return out.value, None


def _by_value(v, kind):
    """v when it is an int naming a value of the library's enum kind, else None."""
    i = _int_or_none(v)
    return i if i is not None and i in _tables()[kind] else None


def _values(kind):
    return f"0..{max(_tables()[kind])}"


def type_name(code):
    """The library's name of a datatype (mlcommTypeName: "float" is float32)."""
    return _tables()["type"].get(code, "unknown")


def transport_name(code):
    """The library's name of a transport, or code itself when it names none."""
    return _tables()["transport"].get(code, code)


def is_bfloat16(dt):
    """True for mlcomm.bfloat16 (metadata tag) and ml_dtypes.bfloat16."""
    if dt.itemsize != 2:
        return False
    md = dt.metadata
    if md is not None and md.get("mlcomm") == "bfloat16":
        return True
    return dt.name == "bfloat16"


def code_of(dt, what="array"):
    """The mlcommDataType_t of a numpy dtype; TypeError when mlcomm has none."""
    if dt.metadata is None:
        c = _CODES.get(dt)
        if c is not None:
            return c
    if is_bfloat16(dt):
        return BFLOAT16
    if dt.metadata is not None:  # e.g. float32 with unrelated metadata
        c = _CODES.get(np.dtype(dt.str))
        if c is not None and dt.isnative:
            return c
    hint = ""
    if dt.kind in "iuf" and not dt.isnative:
        hint = " (non-native byte order: convert with .astype(x.dtype.newbyteorder('=')))"
    elif dt.kind in "iu" and dt.itemsize == 2:
        hint = " (if it holds bfloat16 bits, pass dtype='bfloat16' or use mlcomm.bfloat16)"
    elif dt.kind == "b":
        hint = " (view it as uint8: x.view(np.uint8))"
    raise TypeError(
        f"mlcomm has no datatype for the {what}'s dtype {dt}{hint}; supported: "
        + ", ".join(d.name for d in _CODES) + ", bfloat16")


def override_code(dtype):
    """The mlcommDataType_t named by a dtype= argument: a name the library accepts
    (mlcommTypeFromName), a numpy dtype, or an int code."""
    if isinstance(dtype, str):
        c, why = _from_name("mlcommTypeFromName", dtype, _TYPE_CODES)
        if c is None:
            raise TypeError(f"dtype={dtype!r} is not an mlcomm datatype: {why}")
        return c
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        if _by_value(dtype, "type") is None:
            raise TypeError(f"dtype={dtype} is not an mlcommDataType_t ({_values('type')})")
        return dtype
    return code_of(np.dtype(dtype), "dtype= argument")


def size_of(code):
    """Bytes per element of a valid datatype code (mlcommTypeSize)."""
    s = _SIZES.get(code)
    if s is None:
        _tables()
        s = _SIZES[code]
    return s


def numpy_dtype(dtype):
    """The numpy dtype used to allocate arrays of an mlcomm datatype spec: a library
    datatype name (so "float" is float32, as in C), else anything numpy takes."""
    if isinstance(dtype, str):
        c, _ = _from_name("mlcommTypeFromName", dtype, _TYPE_CODES)
        if c is not None:
            return _DTYPES[c]
    elif isinstance(dtype, np.dtype) and is_bfloat16(dtype):
        return dtype
    dt = np.dtype(dtype)
    code_of(dt, "dtype")  # refuse what mlcomm cannot carry
    return dt


def _int_or_none(v):
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)  # int, numpy integers
    except TypeError:
        return None


def _code_from(v, arg, func, cache, kind):
    """v as a value of the library's enum kind (a name func accepts, or the value);
    ValueError naming arg otherwise."""
    if isinstance(v, str):
        c, why = _from_name(func, v, cache)
        if c is not None:
            return c
        raise ValueError(f"{arg}={v!r}: {why}")
    c = _by_value(v, kind)
    if c is not None:
        return c
    names = " ".join(_tables()[kind].values())
    raise ValueError(f"{arg}={v!r} is not one of {names} (or {_values(kind)})")


def op_code(op):
    """A reduction name ('sum', 'prod', 'max', 'min', 'avg', any case) or value ->
    mlcommRedOp_t; ValueError otherwise."""
    return _code_from(op, "op", "mlcommRedOpFromName", OP_CODES, "op")


def transport_code(t):
    """A transport name ('auto', 'mpi', 'shm', 'nccl', 'hier') or value -> mlcommTransport_t."""
    return _code_from(t, "transport", "mlcommTransportFromName", _TRANSPORT_CODES,
                      "transport")


# ------------------------------------------------------------------ bfloat16 helpers

def to_bfloat16(x):
    """float array -> new mlcomm.bfloat16 array (raw bits), rounding to nearest even;
    NaN stays NaN, infinities stay infinite."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    u = f.view(np.uint32)
    rounded = (u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    nan = np.isnan(f)
    if nan.any():
        rounded = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded)
    return rounded.astype(np.uint16).view(bfloat16).reshape(f.shape)


def from_bfloat16(b):
    """bfloat16 bits (any 2-byte array) -> new float32 array (exact)."""
    b = np.ascontiguousarray(b)
    if b.dtype.itemsize != 2:
        raise TypeError(f"from_bfloat16 expects a 2-byte array of bfloat16 bits, got {b.dtype}")
    return (b.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
