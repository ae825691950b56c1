/* State shared by the files of the NCCL transport (built only when NCCL is found). */
#ifndef MLCOMM_BACKENDS_NCCL_INTERNAL_H
#define MLCOMM_BACKENDS_NCCL_INTERNAL_H

#include <nccl.h>

#include "backends/transport.h"
#include "core/cuda.h"

struct nccl_state {
  struct mlcomm_comm *comm;
  ncclComm_t nc;
  int device;     /* the CUDA device the NCCL communicator is bound to */
  int local_rank; /* rank among this communicator's ranks on this node */
  mlcommResult_t failed; /* sticky: NCCL reported an asynchronous error */
  bool in_group;          /* an mlcomm group is open on it: ops wait for ncclGroupEnd */
  struct nccl_op *pending; /* started inside the open group, event not yet recorded */
};

/* Per call. */
struct nccl_op {
  struct nccl_state *st;
  cudaStream_t stream;
  cudaEvent_t event;
  bool recorded;   /* the event follows the op's work on the stream */
  mlcommResult_t result; /* a failure met after start (group end) */
  struct nccl_op *pending_next; /* the state's open group */
};

/* errors.c: NCCL results as mlcomm results, with NCCL's own string (CUDA errors:
 * MLCOMM_CUDA_CHECK, core/cuda.h). */
mlcommResult_t nccl_fail(struct nccl_state *st, const struct mlcomm_op *op, ncclResult_t r,
                         const char *call);
mlcommResult_t nccl_map_result(ncclResult_t r);
/* Types and ops; false when NCCL has no equivalent. */
bool nccl_type(mlcommDataType_t t, ncclDataType_t *out);
bool nccl_redop(mlcommRedOp_t op, ncclRedOp_t *out);

/* comm.c: bootstrap over MPI, device choice, teardown. */
bool nccl_available(struct mlcomm_comm *comm, const char **why);
mlcommResult_t nccl_comm_init(struct mlcomm_comm *comm, void **state);
void nccl_comm_fini(void *state);
void nccl_comm_abort(void *state);

/* collectives.c, p2p.c: queue one call on the stream (no event yet). */
mlcommResult_t nccl_coll_enqueue(struct nccl_state *st, const struct mlcomm_op *op,
                                 cudaStream_t stream);
mlcommResult_t nccl_p2p_enqueue(struct nccl_state *st, struct mlcomm_op *op,
                                cudaStream_t stream);

/* transport.c */
extern const struct mlcomm_transport mlcomm_transport_nccl;

#endif
