/*
 * The transport contract. A transport owns algorithms; the core owns requests.
 * Every function pointer is filled with a designated initialiser; optional ones
 * may be NULL where noted.
 */
#ifndef MLCOMM_BACKENDS_TRANSPORT_H
#define MLCOMM_BACKENDS_TRANSPORT_H

#include "core/internal.h"

struct mlcomm_transport {
  const char *name;
  mlcommTransport_t id;
  int priority; /* auto selection asks higher priorities first */
  /* Can it serve this communicator at all? Sets *why when not. Collective over comm. */
  bool (*available)(struct mlcomm_comm *comm, const char **why);
  /* Collective over comm. */
  mlcommResult_t (*init)(struct mlcomm_comm *comm, void **state);
  void (*fini)(void *state);
  /* Can it carry this op (memory kinds, type, size)? Must agree on every rank. */
  bool (*supports)(void *state, const struct mlcomm_op *op);
  /* Begins op; never blocks long. */
  mlcommResult_t (*start)(void *state, struct mlcomm_op *op);
  /* Advances op; sets *done when complete (success or failure). */
  mlcommResult_t (*progress)(void *state, struct mlcomm_op *op, bool *done);
  /* Frees per-op state after completion, or abandons it on abort. */
  void (*release)(void *state, struct mlcomm_op *op, bool aborting);
  /* Optional: withdraws an op that has not reached the network (a receive nothing
   * has matched yet); true when withdrawn, after which the core releases it. */
  bool (*withdraw)(void *state, struct mlcomm_op *op);
  /* Optional: point-to-point probe. */
  mlcommResult_t (*probe)(void *state, int peer, int tag, int *found, mlcommStatus_t *status);
  /* Optional: memory the transport uses without copies (mlcommMemAlloc). Returns
   * mlcommUnsupported to let the core fall back to plain host memory. *cookie is passed
   * to mem_free, which must work after fini (the allocation outlives the comm). */
  mlcommResult_t (*mem_alloc)(void *state, size_t bytes, void **ptr, void **cookie);
  void (*mem_free)(void *cookie, void *ptr);
  /* Optional: appends what the transport knows about a timed-out op (which ranks have
   * not arrived) to buf, for the timeout sentence. */
  void (*describe)(void *state, const struct mlcomm_op *op, char *buf, size_t len);
  /* Optional: mlcommCommAbort. Releases the peers waiting on this rank, then frees what
   * it can; fini is not called after it. */
  void (*abort)(void *state);
  /* Optional, added with the NCCL transport: the outermost mlcommGroupEnd calls
   * group_begin once per transport instance among its members before it starts them,
   * and group_end after all have started (NCCL: ncclGroupStart/ncclGroupEnd). */
  void (*group_begin)(void *state);
  mlcommResult_t (*group_end)(void *state);
};

/* The table of every transport in this build, in priority order. */
extern const struct mlcomm_transport *const mlcomm_transports[];
extern const int mlcomm_ntransports;

/* Initialises the transports the comm's config allows; fails naming a forced one that
 * is missing. Collective over comm. */
mlcommResult_t mlcomm_transports_init(struct mlcomm_comm *comm);
void mlcomm_transports_fini(struct mlcomm_comm *comm);
/* The instance that will carry op, or NULL (error already recorded). */
const struct mlcomm_tinst *mlcomm_transport_select(struct mlcomm_comm *comm,
                                                   const struct mlcomm_op *op,
                                                   const char *fn);

extern const struct mlcomm_transport mlcomm_transport_mpi;
extern const struct mlcomm_transport mlcomm_transport_shm;
#if MLCOMM_HAVE_NCCL
extern const struct mlcomm_transport mlcomm_transport_nccl;
#endif

#endif
