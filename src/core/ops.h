/*
 * What the library knows about the things a call names, in one place: operation
 * kinds, datatypes (sizes and names), reduction ops, memory kinds, transports, and
 * how many bytes of each buffer a call touches. Everything else reads these tables;
 * nothing keeps a copy. The public name/size lookups (mlcommTypeSize, ...) are these.
 */
#ifndef MLCOMM_CORE_OPS_H
#define MLCOMM_CORE_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "mlcomm/mlcomm.h"

/* What one public call asks for. */
enum mlcomm_op_kind {
  MLCOMM_OP_ALLREDUCE,
  MLCOMM_OP_BROADCAST,
  MLCOMM_OP_REDUCE,
  MLCOMM_OP_ALLGATHER,
  MLCOMM_OP_REDUCESCATTER,
  MLCOMM_OP_BARRIER,
  MLCOMM_OP_SEND,
  MLCOMM_OP_RECV,
  MLCOMM_OP_KIND_COUNT
};

/* A bit per kind, for transports' capability masks. */
#define MLCOMM_KIND_BIT(k) (1u << (k))
#define MLCOMM_KINDS_COLLECTIVE                                                            \
  (MLCOMM_KIND_BIT(MLCOMM_OP_ALLREDUCE) | MLCOMM_KIND_BIT(MLCOMM_OP_BROADCAST) |            \
   MLCOMM_KIND_BIT(MLCOMM_OP_REDUCE) | MLCOMM_KIND_BIT(MLCOMM_OP_ALLGATHER) |               \
   MLCOMM_KIND_BIT(MLCOMM_OP_REDUCESCATTER))
#define MLCOMM_KINDS_P2P (MLCOMM_KIND_BIT(MLCOMM_OP_SEND) | MLCOMM_KIND_BIT(MLCOMM_OP_RECV))

enum mlcomm_mem_kind { MLCOMM_MEM_HOST, MLCOMM_MEM_PINNED, MLCOMM_MEM_DEVICE, MLCOMM_MEM_MANAGED };
#define MLCOMM_MEM_BIT(k) (1u << (k))
#define MLCOMM_MEMS_HOST (MLCOMM_MEM_BIT(MLCOMM_MEM_HOST) | MLCOMM_MEM_BIT(MLCOMM_MEM_PINNED))
#define MLCOMM_MEMS_CUDA (MLCOMM_MEM_BIT(MLCOMM_MEM_DEVICE) | MLCOMM_MEM_BIT(MLCOMM_MEM_MANAGED))

static inline bool mlcomm_op_is_collective(enum mlcomm_op_kind kind) {
  return kind != MLCOMM_OP_SEND && kind != MLCOMM_OP_RECV;
}

static inline bool mlcomm_op_has_redop(enum mlcomm_op_kind kind) {
  return kind == MLCOMM_OP_ALLREDUCE || kind == MLCOMM_OP_REDUCE ||
         kind == MLCOMM_OP_REDUCESCATTER;
}

/* The public function's name ("mlcommAllReduce"), for sentences. */
const char *mlcomm_op_kind_name(enum mlcomm_op_kind kind);
/* The short name ("allreduce", "reducescatter", "send"), for tune strings and the
 * trace log; -1 from the parser when unknown. */
const char *mlcomm_op_kind_short(enum mlcomm_op_kind kind);
int mlcomm_op_kind_from_short(const char *name, size_t len);

/* Bytes per element; 0 for an unknown type. */
size_t mlcomm_type_size(mlcommDataType_t type);
/* nccl-tests' names: int8 uint8 int32 uint32 int64 uint64 half float double bfloat16;
 * "unknown" for anything else. */
const char *mlcomm_type_name(mlcommDataType_t type);
/* sum prod max min avg; "unknown" otherwise. */
const char *mlcomm_op_name(mlcommRedOp_t op);
/* Parse the names above (case-insensitive, ASCII) and a few aliases (float32, fp16,
 * bf16, ...); -1 when unknown. */
int mlcomm_type_from_name(const char *name);
int mlcomm_op_from_name(const char *name);
/* The accepted spellings, space-separated, for error sentences and usage texts. */
const char *mlcomm_type_names_list(void);
const char *mlcomm_op_names_list(void);

/* auto mpi shm nccl hier; "unknown" otherwise. */
const char *mlcomm_transport_name(int transport);
int mlcomm_transport_from_name(const char *name);

/* "host", "pinned host", "device", "managed". */
const char *mlcomm_mem_kind_name(enum mlcomm_mem_kind kind);

struct mlcomm_comm;
struct mlcomm_op;
/* Bytes of sendbuff and recvbuff this rank reads/writes for op (0 when unused). */
void mlcomm_op_extents(const struct mlcomm_comm *comm, const struct mlcomm_op *op,
                       size_t *send_len, size_t *recv_len);
/* Whether the buffers are in NCCL's in-place layout for op's kind (sendbuff == recvbuff;
 * allgather: sendbuff == recvbuff + rank*count; reduce-scatter: recvbuff == sendbuff +
 * rank*count). */
bool mlcomm_op_in_place(const struct mlcomm_comm *comm, const struct mlcomm_op *op);
/* The call's size as nccl-tests prints it, the same on every rank: count x type size
 * for allreduce, broadcast, reduce, send and recv; the gathered buffer for allgather
 * and the scattered one for reduce-scatter (nranks x count x type size); 0 for a
 * barrier. Tune strings' size ranges and the trace log use it. */
size_t mlcomm_op_size(const struct mlcomm_comm *comm, const struct mlcomm_op *op);

#endif
