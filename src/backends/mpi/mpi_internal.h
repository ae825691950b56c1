/* State shared by the files of the MPI transport. */
#ifndef MLCOMM_BACKENDS_MPI_INTERNAL_H
#define MLCOMM_BACKENDS_MPI_INTERNAL_H

#include "backends/transport.h"

/* A message found by a probe (or refused for being too large) and not yet received:
 * the MPI_Message keeps it out of every other match until it is. */
struct mpi_held {
  MPI_Message msg;
  int source, tag;
  size_t bytes;
  struct mpi_held *next;
};

struct mpi_recv; /* a pending receive, see p2p.c */

/* Collectives whose libnbc algorithm the transport picks per call through MPI_T. */
enum mpi_algo { MPI_ALGO_IALLREDUCE, MPI_ALGO_IREDUCE, MPI_ALGO_COUNT };

struct mpi_algo_var {
  bool found;
  MPI_T_cvar_handle handle;
  int saved;   /* the value to restore after the call */
  bool pushed;
};

struct mpi_state {
  struct mlcomm_comm *comm;
  bool cuda_aware;
  struct mpi_algo_var algo[MPI_ALGO_COUNT]; /* libnbc algorithm choices (algorithms.c) */
  bool mpit_initialized;
  struct mpi_held *held;        /* in arrival order */
  struct mpi_recv *recvs;       /* unmatched receives, in posting order */
};

/* Per-call state. */
struct mpi_op {
  MPI_Request req;
  size_t next_elem;        /* chunked calls: first element of the next chunk */
  size_t chunk_elems;
  void *tmp;               /* in-place reduce-scatter result */
  const void *send;        /* the host buffers MPI uses (staged or the user's) */
  void *recv;
  void *stage_send, *stage_recv; /* pinned host copies of device buffers */
  struct mpi_recv *recv_entry;
  bool started;
};

/* datatypes.c */
mlcommResult_t mpi_types_init(struct mlcomm_comm *comm);
MPI_Datatype mpi_type(mlcommDataType_t dtype);
/* The MPI op for redop on dtype; avg maps to sum (*finish_avg set). */
MPI_Op mpi_op(mlcommDataType_t dtype, mlcommRedOp_t redop, bool *finish_avg);

/* algorithms.c */
void mpi_algo_init(struct mpi_state *st);
void mpi_algo_fini(struct mpi_state *st);
/* Selects libnbc's better algorithm for this one call when op qualifies; undone by
 * mpi_algo_pop right after the MPI call is posted. */
void mpi_algo_push(struct mpi_state *st, enum mpi_algo which, const struct mlcomm_op *op,
                   size_t n);
void mpi_algo_pop(struct mpi_state *st, enum mpi_algo which);

/* collectives.c */
mlcommResult_t mpi_coll_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_coll_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                 bool *done);

/* p2p.c */
mlcommResult_t mpi_p2p_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_p2p_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                bool *done);
void mpi_p2p_release(struct mpi_state *st, struct mpi_op *mo, bool aborting);
bool mpi_p2p_withdraw(void *state, struct mlcomm_op *op);
mlcommResult_t mpi_probe(void *state, int peer, int tag, int *found, mlcommStatus_t *status);
void mpi_p2p_fini(struct mpi_state *st);

/* staging.c: device buffers on an MPI that is not CUDA-aware go through pinned host
 * copies. Without CUDA in the build these only point MPI at the user's buffers. */
bool mpi_cuda_aware(void);
mlcommResult_t mpi_stage_in(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_stage_out(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo);
void mpi_stage_free(struct mpi_op *mo);

#endif
