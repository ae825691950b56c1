"""numpy dtype <-> mlcommDataType_t, reduction ops, transports, and bfloat16 helpers."""

import operator

import numpy as np

# mlcommDataType_t
INT8, UINT8, INT32, UINT32, INT64, UINT64, FLOAT16, FLOAT32, FLOAT64, BFLOAT16 = range(10)

TYPE_NAMES = {
    INT8: "int8", UINT8: "uint8", INT32: "int32", UINT32: "uint32", INT64: "int64",
    UINT64: "uint64", FLOAT16: "float16", FLOAT32: "float32", FLOAT64: "float64",
    BFLOAT16: "bfloat16",
}

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
_SIZES = {INT8: 1, UINT8: 1, INT32: 4, UINT32: 4, INT64: 8, UINT64: 8, FLOAT16: 2,
          FLOAT32: 4, FLOAT64: 8, BFLOAT16: 2}

# Names accepted by dtype= overrides.
_OVERRIDES = {
    "int8": INT8, "char": INT8, "uint8": UINT8, "int32": INT32, "int": INT32,
    "uint32": UINT32, "int64": INT64, "uint64": UINT64, "float16": FLOAT16,
    "half": FLOAT16, "float32": FLOAT32, "float": FLOAT32, "float64": FLOAT64,
    "double": FLOAT64, "bfloat16": BFLOAT16, "bf16": BFLOAT16,
}

OPS = {"sum": 0, "prod": 1, "max": 2, "min": 3, "avg": 4}
OP_NAMES = {v: k for k, v in OPS.items()}
TRANSPORTS = {"auto": 0, "mpi": 1, "shm": 2, "nccl": 3}
TRANSPORT_NAMES = {v: k for k, v in TRANSPORTS.items()}


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
        f"mlcomm has no datatype for the {what}'s dtype {dt}{hint}; supported: int8, "
        "uint8, int32, uint32, int64, uint64, float16, float32, float64, bfloat16")


def override_code(dtype):
    """The mlcommDataType_t named by a dtype= argument (str, numpy dtype or int code)."""
    if isinstance(dtype, str):
        c = _OVERRIDES.get(dtype.lower())
        if c is None:
            raise TypeError(f"dtype={dtype!r} is not an mlcomm datatype; use one of "
                            + ", ".join(sorted(set(TYPE_NAMES.values()))))
        return c
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        if 0 <= dtype < 10:
            return dtype
        raise TypeError(f"dtype={dtype} is not an mlcommDataType_t (0..9)")
    return code_of(np.dtype(dtype), "dtype= argument")


def size_of(code):
    return _SIZES[code]


def numpy_dtype(dtype):
    """The numpy dtype used to allocate arrays of an mlcomm datatype spec."""
    if isinstance(dtype, str) and dtype.lower() in ("bfloat16", "bf16"):
        return bfloat16
    if isinstance(dtype, np.dtype) and is_bfloat16(dtype):
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


def op_code(op):
    """'sum'|'prod'|'max'|'min'|'avg' (or 0..4) -> mlcommRedOp_t; ValueError otherwise."""
    if isinstance(op, str):
        c = OPS.get(op.lower())
        if c is not None:
            return c
    else:
        i = _int_or_none(op)
        if i is not None and 0 <= i < 5:
            return i
    raise ValueError(f"op={op!r} is not a reduction; use one of 'sum', 'prod', 'max', 'min', 'avg'")


def transport_code(t):
    if isinstance(t, str):
        c = TRANSPORTS.get(t.lower())
        if c is not None:
            return c
    else:
        i = _int_or_none(t)
        if i is not None and 0 <= i < 4:
            return i
    raise ValueError(f"transport={t!r} is not a transport; use 'auto', 'mpi', 'shm' or 'nccl'")


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
