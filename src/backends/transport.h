/*
 * The transport contract. A transport owns algorithms; the core owns requests.
 * Every function pointer is filled with a designated initialiser; optional ones
 * may be NULL where noted.
 */
#ifndef MLCOMM_BACKENDS_TRANSPORT_H
#define MLCOMM_BACKENDS_TRANSPORT_H

#include "core/internal.h"
#include "core/params.h"

/* Where a transport's ranks may live. */
enum mlcomm_span { MLCOMM_SPAN_NODE, MLCOMM_SPAN_ANY };

/* What a transport carries, as data: the registry selects from it and names no
 * transport. */
struct mlcomm_caps {
  unsigned kinds;        /* MLCOMM_KIND_BIT of every op kind it carries under auto */
  unsigned forced_kinds; /* kinds it carries only on a communicator forced to it */
  unsigned mems;         /* MLCOMM_MEM_BIT of the memory every buffer of a call may be in */
  enum mlcomm_span span; /* NODE: available only when every rank is on one node */
  bool probe;            /* serves mlcommProbe/Iprobe (the probe hook below) */
  bool fallback;         /* carries what a forced transport lacks: always initialised */
};

struct mlcomm_transport {
  const char *name;
  mlcommTransport_t id;
  struct mlcomm_caps caps;
  /* Scores by collective and size, as a tune string (docs/configuration.md): the
   * highest score among the transports able to carry a call wins under auto, score 0
   * never; "@name" pins one of `algorithms` for that range. MLCOMM_<NAME>_TUNE
   * (MLCOMM_SHM_TUNE ...) adds rules after these, so they win where they overlap. */
  const char *tune;
  /* The algorithms a tune rule may pin, NULL-terminated (NULL: none to choose). The
   * transport reads op->alg (an index here, or -1 for its own rule) and writes back the
   * one it ran, for the trace log. */
  const char *const *algorithms;
  /* Optional: can it serve this communicator at all, beyond caps.span? Sets *why when
   * not. Collective over comm. */
  bool (*available)(struct mlcomm_comm *comm, const char **why);
  /* Collective over comm. */
  mlcommResult_t (*init)(struct mlcomm_comm *comm, void **state);
  void (*fini)(void *state);
  /* Optional: can it carry this op, beyond what caps say (a size limit, a type)? Must
   * agree on every rank. */
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
  /* Optional: the communicator was revoked here (by: the rank that revoked it;
   * failed_rank: the first rank seen to fail, or -1). Makes the peers' waits on this
   * transport fail soon, naming both; the ops of this rank are already released. */
  void (*revoke)(void *state, int by, int failed_rank);
  /* Optional: the outermost mlcommGroupEnd calls group_begin once per transport (not per
   * instance) with every instance of it among the group's members, before it starts
   * them, and group_end with the same instances after all have started (NCCL:
   * ncclGroupStart/ncclGroupEnd). */
  void (*group_begin)(void *const *states, int n);
  mlcommResult_t (*group_end)(void *const *states, int n);
};

/* The table of every transport in this build; on equal scores the first wins. */
extern const struct mlcomm_transport *const mlcomm_transports[];
extern const int mlcomm_ntransports;

/* Initialises the transports the comm's config allows; fails naming a forced one that
 * is missing. Collective over comm. */
mlcommResult_t mlcomm_transports_init(struct mlcomm_comm *comm);
void mlcomm_transports_fini(struct mlcomm_comm *comm);
/* The instance that will carry op, or NULL (error already recorded); sets op->alg to
 * the algorithm its tune rules pin for the call, or -1. */
const struct mlcomm_tinst *mlcomm_transport_select(struct mlcomm_comm *comm,
                                                   struct mlcomm_op *op, const char *fn);
/* The instance that serves probes, or NULL (error recorded, fn names the call). */
const struct mlcomm_tinst *mlcomm_transport_for_probe(struct mlcomm_comm *comm, const char *fn);
/* "MLCOMM_SHM_TUNE" for t, into buf. */
void mlcomm_transport_tune_var(const struct mlcomm_transport *t, char *buf, size_t len);
/* The name of the algorithm op ran (op->alg), or "-" when the transport has none. */
const char *mlcomm_transport_alg_name(const struct mlcomm_transport *t, int alg);

/* For transports composed of others (hier): communicators internal to the library,
 * driven only by their owner. create is collective over mpi (which the new
 * communicator takes over), with the parent's settings and the transport forced; start
 * numbers and selects op on sub as the funnel would (op's memory kinds are the
 * caller's to set; nothing is validated) and starts it; test advances it without
 * waiting and, once done, releases it and returns its result (the sentence of a
 * failure is sub's last error). */
mlcommResult_t mlcomm_subcomm_create(struct mlcomm_comm *parent, MPI_Comm mpi, int transport,
                                     struct mlcomm_comm **out);
void mlcomm_subcomm_destroy(struct mlcomm_comm *sub, bool aborting);
mlcommResult_t mlcomm_subcomm_start(struct mlcomm_comm *sub, const struct mlcomm_op *op,
                                    struct mlcomm_request **out);
mlcommResult_t mlcomm_subcomm_test(struct mlcomm_request *req, bool *done);

/* tune.c: a transport instance's tune rules, parsed from its default string and the
 * environment's (rank 0's, so every rank selects alike). */
struct mlcomm_tune_rule {
  unsigned kinds;     /* MLCOMM_KIND_BIT mask */
  size_t lo, hi;      /* sizes [lo, hi) in mlcomm_op_size's bytes; hi SIZE_MAX = inf */
  int score;          /* -1: this rule sets no score */
  int alg;            /* -1: this rule pins no algorithm */
};
struct mlcomm_tune {
  struct mlcomm_tune_rule *rules;
  int nrules;
};
/* Collective over comm: parses t's tune (plus MLCOMM_<NAME>_TUNE from rank 0). */
mlcommResult_t mlcomm_tune_init(struct mlcomm_comm *comm, const struct mlcomm_transport *t,
                                struct mlcomm_tune *out);
void mlcomm_tune_fini(struct mlcomm_tune *tune);
/* Parses text into rules appended to out; a bad rule is an mlcommInvalidArgument naming
 * source (the variable, or "the built-in tune of <name>") and the rule. */
mlcommResult_t mlcomm_tune_parse(const struct mlcomm_transport *t, const char *text,
                                 const char *source, struct mlcomm_tune *out);
/* The score and pinned algorithm for a call of kind and size (last matching rule). */
void mlcomm_tune_lookup(const struct mlcomm_tune *tune, enum mlcomm_op_kind kind, size_t size,
                        int *score, int *alg);

extern const struct mlcomm_transport mlcomm_transport_mpi;
extern const struct mlcomm_transport mlcomm_transport_shm;
extern const struct mlcomm_transport mlcomm_transport_hier;
#if MLCOMM_HAVE_NCCL
extern const struct mlcomm_transport mlcomm_transport_nccl;
#endif

#endif
