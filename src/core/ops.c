/*
 * The tables behind core/ops.h and the public name and size lookups. Datatype and op
 * names follow nccl-tests, so benchmark output and command lines read the same.
 */
#include "core/internal.h"

#include <stdint.h>
#include <string.h>

static const struct {
  const char *func, *brief;
} op_kinds[MLCOMM_OP_KIND_COUNT] = {
    [MLCOMM_OP_ALLREDUCE] = {"mlcommAllReduce", "allreduce"},
    [MLCOMM_OP_BROADCAST] = {"mlcommBroadcast", "broadcast"},
    [MLCOMM_OP_REDUCE] = {"mlcommReduce", "reduce"},
    [MLCOMM_OP_ALLGATHER] = {"mlcommAllGather", "allgather"},
    [MLCOMM_OP_REDUCESCATTER] = {"mlcommReduceScatter", "reducescatter"},
    [MLCOMM_OP_BARRIER] = {"mlcommBarrier", "barrier"},
    [MLCOMM_OP_SEND] = {"mlcommSend", "send"},
    [MLCOMM_OP_RECV] = {"mlcommRecv", "recv"},
};

static const size_t type_sizes[mlcommNumTypes] = {
    [mlcommInt8] = 1,    [mlcommUint8] = 1,   [mlcommInt32] = 4,   [mlcommUint32] = 4,
    [mlcommInt64] = 8,   [mlcommUint64] = 8,  [mlcommFloat16] = 2, [mlcommFloat32] = 4,
    [mlcommFloat64] = 8, [mlcommBfloat16] = 2,
};

static const char *const type_names[mlcommNumTypes] = {
    [mlcommInt8] = "int8",       [mlcommUint8] = "uint8",     [mlcommInt32] = "int32",
    [mlcommUint32] = "uint32",   [mlcommInt64] = "int64",     [mlcommUint64] = "uint64",
    [mlcommFloat16] = "half",    [mlcommFloat32] = "float",   [mlcommFloat64] = "double",
    [mlcommBfloat16] = "bfloat16",
};

/* Spellings accepted on top of the canonical names, from other frameworks' usage. */
static const struct {
  const char *name;
  mlcommDataType_t type;
} type_aliases[] = {
    {"float16", mlcommFloat16}, {"fp16", mlcommFloat16},  {"float32", mlcommFloat32},
    {"fp32", mlcommFloat32},    {"float64", mlcommFloat64}, {"fp64", mlcommFloat64},
    {"bf16", mlcommBfloat16},   {"char", mlcommInt8},     {"int", mlcommInt32},
};

static const char *const op_names[mlcommNumOps] = {
    [mlcommSum] = "sum", [mlcommProd] = "prod", [mlcommMax] = "max",
    [mlcommMin] = "min", [mlcommAvg] = "avg",
};

static const char *const transport_names[mlcommNumTransports] = {
    [mlcommTransportAuto] = "auto",
    [mlcommTransportMpi] = "mpi",
    [mlcommTransportShm] = "shm",
    [mlcommTransportNccl] = "nccl",
    [mlcommTransportHier] = "hier",
};

/* ASCII-only case folding over the first len bytes of a (b is NUL-terminated):
 * names come from command lines and environment variables, and the result must not
 * depend on the process locale. */
static bool name_equal_n(const char *a, size_t len, const char *b) {
  for (size_t i = 0; i < len; i++, b++) {
    char ca = (a[i] >= 'A' && a[i] <= 'Z') ? (char)(a[i] - 'A' + 'a') : a[i];
    char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
    if (ca != cb || cb == '\0') return false;
  }
  return *b == '\0';
}

static bool name_equal(const char *a, const char *b) { return name_equal_n(a, strlen(a), b); }

const char *mlcomm_op_kind_name(enum mlcomm_op_kind kind) {
  if ((unsigned)kind >= MLCOMM_OP_KIND_COUNT) return "unknown op";
  return op_kinds[kind].func;
}

const char *mlcomm_op_kind_short(enum mlcomm_op_kind kind) {
  if ((unsigned)kind >= MLCOMM_OP_KIND_COUNT) return "unknown";
  return op_kinds[kind].brief;
}

int mlcomm_op_kind_from_short(const char *name, size_t len) {
  for (int k = 0; name && k < MLCOMM_OP_KIND_COUNT; k++)
    if (name_equal_n(name, len, op_kinds[k].brief)) return k;
  return -1;
}

size_t mlcomm_type_size(mlcommDataType_t type) {
  /* The enum may be signed or unsigned; compare as unsigned to reject negatives too. */
  if ((unsigned)type >= (unsigned)mlcommNumTypes) return 0;
  return type_sizes[type];
}

const char *mlcomm_type_name(mlcommDataType_t type) {
  if ((unsigned)type >= (unsigned)mlcommNumTypes) return "unknown";
  return type_names[type];
}

const char *mlcomm_op_name(mlcommRedOp_t op) {
  if ((unsigned)op >= (unsigned)mlcommNumOps) return "unknown";
  return op_names[op];
}

int mlcomm_type_from_name(const char *name) {
  if (name == NULL) return -1;
  for (int t = 0; t < mlcommNumTypes; t++)
    if (name_equal(name, type_names[t])) return t;
  for (size_t i = 0; i < sizeof type_aliases / sizeof type_aliases[0]; i++)
    if (name_equal(name, type_aliases[i].name)) return (int)type_aliases[i].type;
  return -1;
}

int mlcomm_op_from_name(const char *name) {
  if (name == NULL) return -1;
  for (int op = 0; op < mlcommNumOps; op++)
    if (name_equal(name, op_names[op])) return op;
  return -1;
}

const char *mlcomm_type_names_list(void) {
  return "int8 uint8 int32 uint32 int64 uint64 half float double bfloat16 (or float16 fp16 "
         "float32 fp32 float64 fp64 bf16 char int)";
}

const char *mlcomm_op_names_list(void) { return "sum prod max min avg"; }

const char *mlcomm_transport_name(int transport) {
  if (transport < 0 || transport >= mlcommNumTransports) return "unknown";
  return transport_names[transport];
}

int mlcomm_transport_from_name(const char *name) {
  for (int i = 0; name && i < mlcommNumTransports; i++)
    if (name_equal(name, transport_names[i])) return i;
  return -1;
}

const char *mlcomm_mem_kind_name(enum mlcomm_mem_kind kind) {
  switch (kind) {
  case MLCOMM_MEM_HOST: return "host";
  case MLCOMM_MEM_PINNED: return "pinned host";
  case MLCOMM_MEM_DEVICE: return "device";
  case MLCOMM_MEM_MANAGED: return "managed";
  }
  return "unknown";
}

void mlcomm_op_extents(const struct mlcomm_comm *comm, const struct mlcomm_op *op,
                       size_t *send_len, size_t *recv_len) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype), n = (size_t)comm->nranks;
  bool root = op->root == comm->rank;
  *send_len = *recv_len = bytes;
  switch (op->kind) {
  case MLCOMM_OP_BROADCAST: *send_len = root ? bytes : 0; break;
  case MLCOMM_OP_REDUCE: *recv_len = root ? bytes : 0; break;
  case MLCOMM_OP_ALLGATHER: *recv_len = bytes * n; break;
  case MLCOMM_OP_REDUCESCATTER: *send_len = bytes * n; break;
  case MLCOMM_OP_SEND: *recv_len = 0; break;
  case MLCOMM_OP_RECV: *send_len = 0; break;
  case MLCOMM_OP_BARRIER: *send_len = *recv_len = 0; break;
  default: break;
  }
}

bool mlcomm_op_in_place(const struct mlcomm_comm *comm, const struct mlcomm_op *op) {
  size_t bytes = op->count * mlcomm_type_size(op->dtype), at = bytes * (size_t)comm->rank;
  switch (op->kind) {
  case MLCOMM_OP_ALLGATHER: return op->sendbuf == (const char *)op->recvbuf + at;
  case MLCOMM_OP_REDUCESCATTER: return op->recvbuf == (const char *)op->sendbuf + at;
  default: return op->sendbuf == op->recvbuf;
  }
}

size_t mlcomm_op_size(const struct mlcomm_comm *comm, const struct mlcomm_op *op) {
  if (op->kind == MLCOMM_OP_BARRIER) return 0;
  size_t bytes = op->count * mlcomm_type_size(op->dtype);
  if (op->kind == MLCOMM_OP_ALLGATHER || op->kind == MLCOMM_OP_REDUCESCATTER)
    bytes *= (size_t)comm->nranks;
  return bytes;
}

/* ---- public lookups */

MLCOMM_API mlcommResult_t mlcommTypeSize(mlcommDataType_t datatype, size_t *size) {
  if (size == NULL) return mlcomm_error(NULL, mlcommInvalidArgument, "mlcommTypeSize: size is NULL");
  *size = mlcomm_type_size(datatype);
  if (*size == 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "mlcommTypeSize: datatype is %d, expected an mlcommDataType_t (0..%d)",
                        (int)datatype, mlcommNumTypes - 1);
  return mlcommSuccess;
}

MLCOMM_API const char *mlcommTypeName(mlcommDataType_t datatype) {
  return mlcomm_type_name(datatype);
}

MLCOMM_API const char *mlcommRedOpName(mlcommRedOp_t op) { return mlcomm_op_name(op); }

MLCOMM_API const char *mlcommTransportName(mlcommTransport_t transport) {
  return mlcomm_transport_name((int)transport);
}

MLCOMM_API mlcommResult_t mlcommTypeFromName(const char *name, mlcommDataType_t *datatype) {
  if (datatype == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument, "mlcommTypeFromName: datatype is NULL");
  int t = mlcomm_type_from_name(name);
  if (t < 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "mlcommTypeFromName: '%s' is not a datatype name; expected one of %s",
                        name ? name : "(null)", mlcomm_type_names_list());
  *datatype = (mlcommDataType_t)t;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommRedOpFromName(const char *name, mlcommRedOp_t *op) {
  if (op == NULL) return mlcomm_error(NULL, mlcommInvalidArgument, "mlcommRedOpFromName: op is NULL");
  int o = mlcomm_op_from_name(name);
  if (o < 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "mlcommRedOpFromName: '%s' is not a reduction op name; expected one of %s",
                        name ? name : "(null)", mlcomm_op_names_list());
  *op = (mlcommRedOp_t)o;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommTransportFromName(const char *name,
                                                  mlcommTransport_t *transport) {
  if (transport == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument, "mlcommTransportFromName: transport is NULL");
  int t = mlcomm_transport_from_name(name);
  if (t < 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "mlcommTransportFromName: '%s' is not a transport name; expected one of "
                        "auto mpi shm nccl hier",
                        name ? name : "(null)");
  *transport = (mlcommTransport_t)t;
  return mlcommSuccess;
}
