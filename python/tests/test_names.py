"""Datatype, op and transport names and sizes come from the library (mlcommTypeName,
mlcommTypeFromName, mlcommTypeSize, ...): spellings only the C API knows are accepted,
and refusals carry its list of accepted names."""

import numpy as np
import pytest

import mlcomm
from mlcomm import _types


def test_names_and_sizes_are_the_librarys():
    assert _types.type_name(_types.FLOAT32) == "float"  # nccl-tests' spelling
    assert _types.type_name(_types.BFLOAT16) == "bfloat16"
    assert [_types.size_of(c) for c in range(10)] == [1, 1, 4, 4, 8, 8, 2, 4, 8, 2]
    assert _types.transport_name(2) == "shm" and _types.transport_name(99) == 99
    # every numpy dtype the package maps has the size the library gives its code
    for dt, code in _types._CODES.items():
        assert dt.itemsize == _types.size_of(code), dt


def test_library_spellings(comm):
    x = np.arange(6, dtype=np.float32)
    ref = x * comm.size
    for spelling in ("fp32", "FLOAT", "float32", "Float"):
        y = x.copy()
        comm.allreduce(y, op="SUM", dtype=spelling)
        assert np.array_equal(y, ref), spelling
    assert _types.op_code("Avg") == 4 and _types.transport_code("SHM") == 2
    assert mlcomm.mem_alloc(comm, 3, "double").dtype == np.float64
    assert mlcomm.mem_alloc(comm, 3, "float").dtype == np.float32  # C's float, not numpy's
    assert mlcomm.mem_alloc(comm, 3, "bf16").dtype == mlcomm.bfloat16
    assert mlcomm.mem_alloc(comm, 3, "f8").dtype == np.float64  # numpy's own codes still work
    assert mlcomm.Status(0, 0, 12).count("half") == 6


def test_refusals_name_the_argument_and_the_accepted_names(comm):
    x = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match=r"dtype='complex'.*expected one of int8 .* bfloat16"):
        comm.allreduce(x, dtype="complex")
    with pytest.raises(TypeError, match="NUL"):
        comm.allreduce(x, dtype="float\0")
    with pytest.raises(TypeError, match=r"dtype=10 is not an mlcommDataType_t \(0\.\.9\)"):
        comm.allreduce(x, dtype=10)
    with pytest.raises(ValueError, match="op='mean'.*sum prod max min avg"):
        comm.allreduce(x, op="mean")
    with pytest.raises(ValueError, match=r"op=5 is not one of sum prod max min avg \(or 0\.\.4\)"):
        comm.allreduce(x, op=5)
    with pytest.raises(ValueError, match=r"op=True"):
        comm.allreduce(x, op=True)
    with pytest.raises(ValueError, match="transport='pigeon'.*auto mpi shm nccl"):
        comm.split(0, transport="pigeon")
    with pytest.raises(ValueError, match=r"transport=-1 .*\(or 0\.\.4\)"):
        comm.split(0, transport=-1)
