/*
 * NCCL's results as mlcomm's, with NCCL's own words (ncclGetErrorString, and
 * ncclGetLastError's detail when the library has one), and mlcomm's types and
 * reduction ops as NCCL's.
 */
#include <stdio.h>

#include "backends/nccl/nccl_internal.h"

mlcommResult_t nccl_map_result(ncclResult_t r) {
  switch (r) {
  case ncclSuccess: return mlcommSuccess;
  case ncclInvalidArgument:
  case ncclInvalidUsage: return mlcommInvalidArgument;
  case ncclSystemError: return mlcommSystemError;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 12, 0)
  case ncclRemoteError: return mlcommRemoteError;
#endif
  case ncclInProgress: return mlcommInProgress;
  case ncclUnhandledCudaError:
  case ncclInternalError:
  default: return mlcommInternalError;
  }
}

/* The library's own account of the last failure (NCCL 2.13 on), or "". */
static const char *last_detail(ncclComm_t nc) {
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  return ncclGetLastError(nc);
#else
  (void)nc;
  return "";
#endif
}

/* "allreduce (seq 7) on the NCCL transport", or "NCCL transport" outside a call. */
static const char *where(const struct mlcomm_op *op, char *buf, size_t len) {
  if (op == NULL) return "NCCL transport";
  snprintf(buf, len, "%s (seq %llu) on the NCCL transport", mlcomm_op_kind_name(op->kind),
           (unsigned long long)op->seq);
  return buf;
}

mlcommResult_t nccl_fail(struct nccl_state *st, const struct mlcomm_op *op, ncclResult_t r,
                         const char *call) {
  const char *detail = last_detail(st ? st->nc : NULL);
  char buf[128];
  return mlcomm_error(st ? st->comm : NULL, nccl_map_result(r), "%s: %s failed: %s%s%s",
                      where(op, buf, sizeof buf), call, ncclGetErrorString(r),
                      detail && *detail ? ": " : "", detail ? detail : "");
}

bool nccl_type(mlcommDataType_t t, ncclDataType_t *out) {
  switch (t) {
  case mlcommInt8: *out = ncclInt8; return true;
  case mlcommUint8: *out = ncclUint8; return true;
  case mlcommInt32: *out = ncclInt32; return true;
  case mlcommUint32: *out = ncclUint32; return true;
  case mlcommInt64: *out = ncclInt64; return true;
  case mlcommUint64: *out = ncclUint64; return true;
  case mlcommFloat16: *out = ncclFloat16; return true;
  case mlcommFloat32: *out = ncclFloat32; return true;
  case mlcommFloat64: *out = ncclFloat64; return true;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
  case mlcommBfloat16: *out = ncclBfloat16; return true;
#endif
  default: return false;
  }
}

bool nccl_redop(mlcommRedOp_t op, ncclRedOp_t *out) {
  switch (op) {
  case mlcommSum: *out = ncclSum; return true;
  case mlcommProd: *out = ncclProd; return true;
  case mlcommMax: *out = ncclMax; return true;
  case mlcommMin: *out = ncclMin; return true;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
  case mlcommAvg: *out = ncclAvg; return true;
#endif
  default: return false;
  }
}
