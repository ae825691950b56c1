/* State shared by the files of the MPI transport. */
#ifndef MLCOMM_BACKENDS_MPI_INTERNAL_H
#define MLCOMM_BACKENDS_MPI_INTERNAL_H

#include "backends/transport.h"
#include "core/params.h"

/* A message found by a probe (or refused for being too large) and not yet received:
 * the MPI_Message keeps it out of every other match until it is. */
struct mpi_held {
  MPI_Message msg;
  int source, tag;
  size_t bytes;
  struct mpi_held *next;
};

struct mpi_recv; /* a pending receive, see p2p.c */

/* The algorithms a tune rule may pin (MLCOMM_MPI_TUNE=allreduce:0-64k:@ring), in the
 * order of transport.c's names. native: the MPI library's own choice. */
enum mpi_alg { MPI_ALG_NATIVE, MPI_ALG_RING, MPI_ALG_RECURSIVE_DOUBLING, MPI_ALG_BINOMIAL };

/* Collectives whose libnbc algorithm the transport picks per call through MPI_T. */
enum mpi_algo { MPI_ALGO_IALLREDUCE, MPI_ALGO_IREDUCE, MPI_ALGO_COUNT };

struct mpi_algo_var {
  bool found;
  MPI_T_cvar_handle handle;
  int saved;   /* the value to restore after the call */
  bool pushed;
};

/* A pinned host block for staging device buffers, kept for reuse (cudaMallocHost is
 * slow), with the CUDA events of its slots. */
#define MPI_STAGE_MAX_SLOTS 16
struct mpi_pinned {
  void *mem;
  size_t bytes;
  void *ev_in[MPI_STAGE_MAX_SLOTS], *ev_out[MPI_STAGE_MAX_SLOTS]; /* cudaEvent_t */
  struct mpi_pinned *next;
};

/* Sizes at which libnbc's better algorithms are asked for (MLCOMM_MPI_*_BYTES). */
struct mpi_algo_limits {
  int64_t ring_bytes, rd_max_bytes, binomial_bytes;
};

struct mpi_op;

struct mpi_state {
  struct mlcomm_comm *comm;
  bool cuda_aware;
  bool gpu_comm; /* some rank of the communicator has a usable GPU (agreed at init) */
  struct mpi_algo_var algo[MPI_ALGO_COUNT]; /* libnbc algorithm choices (algorithms.c) */
  bool mpit_initialized;
  struct mpi_algo_limits limits;
  size_t chunk_elems;  /* MLCOMM_MPI_CHUNK_ELEMS */
  size_t stage_bytes;  /* MLCOMM_MPI_STAGE_BYTES */
  struct mpi_held *held;        /* in arrival order */
  struct mpi_recv *recvs;       /* unmatched receives, in posting order */
  /* Collectives that still have MPI calls to post, in call order: only the first may
   * post, so every rank posts every MPI call of every collective in the same order
   * even when one call takes several MPI calls (chunks) and others are in flight. */
  struct mpi_op *order_head, *order_tail;
  struct mpi_pinned *pinned;    /* free pinned blocks */
  int npinned;
};

/* One chunk's place in the staging pipeline. */
enum mpi_slot_state { MPI_SLOT_FREE, MPI_SLOT_FILLING, MPI_SLOT_POSTED, MPI_SLOT_DRAINING };

struct mpi_slot {
  enum mpi_slot_state state;
  size_t chunk; /* the chunk it holds */
};

/* Per-call state. */
struct mpi_op {
  struct mlcomm_op *op;
  MPI_Request req;
  /* The chunk schedule: a collective is one MPI call, or (allreduce, broadcast, reduce)
   * a sequence of chunk_elems-element calls, one in flight at a time. Every rank
   * derives the same schedule from the call alone (collectives.c). */
  size_t chunk_elems, nchunks;
  size_t posted, finished;      /* chunks handed to MPI / completed by MPI */
  size_t filled;                /* chunks whose input copy has been queued */
  mlcommResult_t deferred;      /* a failure met while another call advanced this one */
  int alg_pinned;               /* op->alg as selection left it: the tune's pin, or -1 */
  bool queued;                  /* on the state's order list */
  struct mpi_op *order_next;
  void *tmp;                    /* in-place reduce-scatter result (host buffers) */
  const void *send;             /* p2p: the host buffers MPI uses (staged or the user's) */
  void *recv;
  /* Staging of device buffers through pinned host memory (staging.c). */
  bool stage_send, stage_recv;
  bool share;                   /* in place: one staged buffer holds input and result */
  size_t send_cap, recv_cap;    /* bytes per slot */
  int nslots;
  struct mpi_pinned *block;
  struct mpi_slot slot[MPI_STAGE_MAX_SLOTS];
  struct mpi_recv *recv_entry;
};

/* datatypes.c */
mlcommResult_t mpi_types_init(struct mlcomm_comm *comm);
MPI_Datatype mpi_type(mlcommDataType_t dtype);
/* The MPI op for redop on dtype; avg maps to sum (*finish_avg set). */
MPI_Op mpi_op(mlcommDataType_t dtype, mlcommRedOp_t redop, bool *finish_avg);

/* algorithms.c */
void mpi_algo_init(struct mpi_state *st);
void mpi_algo_fini(struct mpi_state *st);
/* Selects libnbc's better algorithm (or the one pinned, -1: none) for this one call of n
 * elements when op qualifies, and returns the one MPI will run; undone by mpi_algo_pop
 * right after the MPI call is posted. */
enum mpi_alg mpi_algo_push(struct mpi_state *st, enum mpi_algo which,
                           const struct mlcomm_op *op, int pinned, size_t n);
void mpi_algo_pop(struct mpi_state *st, enum mpi_algo which);

/* collectives.c */
mlcommResult_t mpi_coll_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_coll_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                 bool *done);
/* Takes the call off the order list (a failed or aborted call lets the next one post). */
void mpi_coll_release(struct mpi_state *st, struct mpi_op *mo, bool aborting);

/* p2p.c */
mlcommResult_t mpi_p2p_start(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_p2p_progress(struct mpi_state *st, struct mlcomm_op *op, struct mpi_op *mo,
                                bool *done);
void mpi_p2p_release(struct mpi_state *st, struct mpi_op *mo, bool aborting);
bool mpi_p2p_withdraw(void *state, struct mlcomm_op *op);
mlcommResult_t mpi_probe(void *state, int peer, int tag, int *found, mlcommStatus_t *status);
void mpi_p2p_fini(struct mpi_state *st);

/* staging.c: device buffers on an MPI that is not CUDA-aware (or in a call whose
 * reduction runs on the host) go through pinned host memory. Collectives pipeline it:
 * a chunk is copied in on the communicator's stream while MPI works on the one before,
 * and the one before that is copied out. Without CUDA in the build nothing is staged
 * and the pointers below are the user's. */
bool mpi_cuda_aware(void);
/* Collective over comm: whether any of its ranks has a usable GPU. */
bool mpi_gpu_comm(struct mlcomm_comm *comm);
/* Whether the call's reduction runs on the CPU (user-defined MPI ops, avg). */
bool mpi_host_reduces(const struct mlcomm_op *op);
/* Whether this rank must take the call's device buffers through host memory. */
bool mpi_stage_needed(const struct mpi_state *st, const struct mlcomm_op *op);
/* Collectives: decides what this rank stages and takes a pinned block for the slots. */
mlcommResult_t mpi_stage_setup(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo);
/* The host pointers MPI uses for chunk k (NULL where the rank has no such buffer). */
void mpi_stage_ptrs(const struct mpi_state *st, const struct mlcomm_op *op,
                    const struct mpi_op *mo, size_t k, const void **send, void **recv);
/* Queues input copies for the chunks that have a free slot. */
mlcommResult_t mpi_stage_fill(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo);
/* Whether chunk k's input is on the host. */
mlcommResult_t mpi_stage_ready(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k, bool *ready);
/* Chunk k's result is on the host: queue its copy out (or free its slot). */
mlcommResult_t mpi_stage_drain(struct mpi_state *st, const struct mlcomm_op *op,
                               struct mpi_op *mo, size_t k);
/* Whether every copy out has finished. */
mlcommResult_t mpi_stage_drained(struct mpi_state *st, const struct mlcomm_op *op,
                                 struct mpi_op *mo, bool *drained);
/* Point-to-point: whole-message staging (a message stays one MPI message). */
mlcommResult_t mpi_stage_in(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo);
mlcommResult_t mpi_stage_out(struct mpi_state *st, const struct mlcomm_op *op, struct mpi_op *mo);
/* Gives the op's pinned block back to the state's cache. */
void mpi_stage_free(struct mpi_state *st, struct mpi_op *mo);
void mpi_stage_fini(struct mpi_state *st);

#endif
