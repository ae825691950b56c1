/*
 * mlcomm types and ops as MPI sees them. MPI has no float16/bfloat16, so each is a
 * 2-byte contiguous type of its own, reduced by user-defined ops that call the
 * library's kernels (so are 8-bit integers, see mpi_op) (src/collectives/reduce_kernels.c) - the same code every other
 * transport uses. avg is a sum here; the division happens once on the result.
 */
#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"

static MPI_Datatype half_type = MPI_DATATYPE_NULL, bf16_type = MPI_DATATYPE_NULL;
static MPI_Op user_ops[4] = {MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};

static mlcommDataType_t user_type(MPI_Datatype dt) {
  if (dt == half_type) return mlcommFloat16;
  if (dt == bf16_type) return mlcommBfloat16;
  if (dt == MPI_INT8_T) return mlcommInt8;
  return mlcommUint8;
}

static void user_reduce(mlcommRedOp_t redop, void *in, void *inout, int *len, MPI_Datatype *dt) {
  mlcommDataType_t t = user_type(*dt);
  mlcomm_reduce(t, redop, inout, in, (size_t)*len);
}

static void op_sum(void *in, void *inout, int *len, MPI_Datatype *dt) { user_reduce(mlcommSum, in, inout, len, dt); }
static void op_prod(void *in, void *inout, int *len, MPI_Datatype *dt) { user_reduce(mlcommProd, in, inout, len, dt); }
static void op_max(void *in, void *inout, int *len, MPI_Datatype *dt) { user_reduce(mlcommMax, in, inout, len, dt); }
static void op_min(void *in, void *inout, int *len, MPI_Datatype *dt) { user_reduce(mlcommMin, in, inout, len, dt); }

mlcommResult_t mpi_types_init(struct mlcomm_comm *comm) {
  /* Process-wide and created once; MPI_Finalize frees them. */
  if (half_type != MPI_DATATYPE_NULL) return mlcommSuccess;
  MPI_User_function *fns[4] = {op_sum, op_prod, op_max, op_min};
  MLCOMM_MPI_CHECK(comm, MPI_Type_contiguous(2, MPI_BYTE, &half_type));
  MLCOMM_MPI_CHECK(comm, MPI_Type_commit(&half_type));
  MLCOMM_MPI_CHECK(comm, MPI_Type_contiguous(2, MPI_BYTE, &bf16_type));
  MLCOMM_MPI_CHECK(comm, MPI_Type_commit(&bf16_type));
  for (int i = 0; i < 4; i++) MLCOMM_MPI_CHECK(comm, MPI_Op_create(fns[i], 1, &user_ops[i]));
  return mlcommSuccess;
}

MPI_Datatype mpi_type(mlcommDataType_t dtype) {
  switch (dtype) {
  case mlcommInt8: return MPI_INT8_T;
  case mlcommUint8: return MPI_UINT8_T;
  case mlcommInt32: return MPI_INT32_T;
  case mlcommUint32: return MPI_UINT32_T;
  case mlcommInt64: return MPI_INT64_T;
  case mlcommUint64: return MPI_UINT64_T;
  case mlcommFloat16: return half_type;
  case mlcommFloat32: return MPI_FLOAT;
  case mlcommFloat64: return MPI_DOUBLE;
  case mlcommBfloat16: return bf16_type;
  default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpi_op(mlcommDataType_t dtype, mlcommRedOp_t redop, bool *finish_avg) {
  *finish_avg = redop == mlcommAvg;
  if (redop == mlcommAvg) redop = mlcommSum;
  /* Open MPI 4.1's op/avx component saturates MPI_SUM on 8-bit integers (200 + 200
   * gives 255 for uint8) where every other path wraps; mlcomm defines integer sums as
   * wrapping, so 8-bit types are reduced by the library's kernels too. */
  if (dtype == mlcommFloat16 || dtype == mlcommBfloat16 || dtype == mlcommInt8 ||
      dtype == mlcommUint8)
    return user_ops[redop];
  static const MPI_Op native[] = {[mlcommSum] = MPI_SUM, [mlcommProd] = MPI_PROD,
                                  [mlcommMax] = MPI_MAX, [mlcommMin] = MPI_MIN};
  return native[redop];
}
