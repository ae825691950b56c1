"""Reference data and numpy references for the collective tests."""

import numpy as np

import mlcomm

DTYPES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32",
          "float64", "bfloat16"]
OPS = ["sum", "prod", "max", "min", "avg"]
SIGNED = {"int8", "int32", "int64"}
FLOATS = {"float16", "float32", "float64", "bfloat16"}


def np_dtype(name):
    return mlcomm.bfloat16 if name == "bfloat16" else np.dtype(name)


def values(rank, n, name, seed=0):
    """Small integers, exact in every type, whose sums and products over up to 4 ranks
    stay exact too: -3..3 for signed/float types, 1..4 for unsigned ones."""
    i = np.arange(n, dtype=np.int64)
    v = (i * 3 + rank * 5 + seed) % 7
    if name in SIGNED or name in FLOATS:
        return v - 3
    return v % 4 + 1


def make(name, vals):
    """An array of mlcomm datatype `name` holding vals (int64/float64)."""
    if name == "bfloat16":
        return mlcomm.to_bfloat16(np.asarray(vals, dtype=np.float32))
    return np.asarray(vals).astype(np.dtype(name))


def as_float(name, arr):
    """arr as float64 (bfloat16 bits decoded), for comparisons."""
    if name == "bfloat16":
        return mlcomm.from_bfloat16(arr).astype(np.float64)
    return np.asarray(arr).astype(np.float64)


def reduce_ref(name, op, per_rank):
    """op over ranks of per_rank (list of int64 arrays), as mlcomm defines it, as
    float64 values of what the result array must hold."""
    stack = np.stack(per_rank).astype(np.int64)
    n = len(per_rank)
    if op == "sum":
        r = stack.sum(axis=0)
    elif op == "prod":
        r = stack.prod(axis=0)
    elif op == "max":
        r = stack.max(axis=0)
    elif op == "min":
        r = stack.min(axis=0)
    else:  # avg
        s = stack.sum(axis=0)
        if name in FLOATS:
            if name == "float64":
                return s.astype(np.float64) / n
            q = s.astype(np.float32) / np.float32(n)  # half types: divided in float
            if name == "float16":
                return q.astype(np.float16).astype(np.float64)
            if name == "bfloat16":
                return mlcomm.from_bfloat16(mlcomm.to_bfloat16(q)).astype(np.float64)
            return q.astype(np.float64)
        r = np.trunc(s / n).astype(np.int64)  # integers: truncates toward zero
    if name not in FLOATS:
        r = r.astype(np.dtype(name))  # integers wrap
    return r.astype(np.float64)


def assert_result(name, got, expected, op=None):
    g = as_float(name, got).ravel()
    e = np.asarray(expected, dtype=np.float64).ravel()
    if op == "avg" and name in ("float32", "float64"):
        np.testing.assert_allclose(g, e, rtol=1e-6 if name == "float32" else 1e-12)
    else:
        np.testing.assert_array_equal(g, e)
