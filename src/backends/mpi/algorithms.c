/*
 * Algorithm choice inside Open MPI's libnbc, per call, through the MPI tool
 * interface. Measured on 2 and 4 ranks (docs/architecture.md): libnbc's default
 * non-blocking allreduce on fewer than four ranks is a binomial reduce+broadcast and
 * its default non-blocking reduce is a chain, each about half the speed of the
 * blocking call; its ring allreduce (from 4 KiB), recursive-doubling allreduce (below
 * 512 B) and binomial reduce are faster. The
 * variable is set just before the one MPI call and restored right after, so the
 * user's own MPI calls never see a change. Every rank decides from the same size, as
 * the variables' MPI_T scope requires. On an MPI without these variables nothing
 * happens.
 */
#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"

MLCOMM_PARAM(MpiRingBytes, "MLCOMM_MPI_RING_BYTES", 4096, -1, INT64_MAX);
MLCOMM_PARAM(MpiRdMaxBytes, "MLCOMM_MPI_RD_MAX_BYTES", 512, 0, INT64_MAX);
MLCOMM_PARAM(MpiBinomialBytes, "MLCOMM_MPI_BINOMIAL_BYTES", 0, -1, INT64_MAX);

/* libnbc's enums: iallreduce 1 = ring, 4 = recursive doubling; ireduce 2 = binomial. */
#define NBC_IALLREDUCE_RING 1
#define NBC_IALLREDUCE_RECURSIVE_DOUBLING 4
#define NBC_IREDUCE_BINOMIAL 2

static const char *const cvar_names[MPI_ALGO_COUNT] = {
    [MPI_ALGO_IALLREDUCE] = "coll_libnbc_iallreduce_algorithm",
    [MPI_ALGO_IREDUCE] = "coll_libnbc_ireduce_algorithm",
};

void mpi_algo_init(struct mpi_state *st) {
  int provided, index, count;
  st->limits = (struct mpi_algo_limits){
      .ring_bytes = mlcomm_param(st->comm, &mlcomm_param_MpiRingBytes),
      .rd_max_bytes = mlcomm_param(st->comm, &mlcomm_param_MpiRdMaxBytes),
      .binomial_bytes = mlcomm_param(st->comm, &mlcomm_param_MpiBinomialBytes)};
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return;
  st->mpit_initialized = true;
  for (int i = 0; i < MPI_ALGO_COUNT; i++) {
    struct mpi_algo_var *v = &st->algo[i];
    v->found = MPI_T_cvar_get_index(cvar_names[i], &index) == MPI_SUCCESS &&
               MPI_T_cvar_handle_alloc(index, NULL, &v->handle, &count) == MPI_SUCCESS;
  }
}

void mpi_algo_fini(struct mpi_state *st) {
  for (int i = 0; i < MPI_ALGO_COUNT; i++)
    if (st->algo[i].found) MPI_T_cvar_handle_free(&st->algo[i].handle);
  if (st->mpit_initialized) MPI_T_finalize(); /* MPI_T counts inits and finalizes */
}

/* The algorithm for this chunk of n elements: the one a tune rule pinned when it
 * applies here, else the size rule. Depends only on values every rank shares (size,
 * rank count, rank 0's tune). */
static enum mpi_alg choose(const struct mpi_state *st, enum mpi_algo which,
                           const struct mlcomm_op *op, int pinned, size_t n) {
  const struct mpi_algo_limits *t = &st->limits;
  int64_t bytes = (int64_t)(n * mlcomm_type_size(op->dtype));
  if (st->comm->nranks < 2) return MPI_ALG_NATIVE;
  /* The ring gives every rank a block: it needs at least one element per rank. */
  bool ring_fits = n >= (size_t)st->comm->nranks;
  if (which == MPI_ALGO_IREDUCE) {
    if (pinned == MPI_ALG_NATIVE || pinned == MPI_ALG_BINOMIAL) return (enum mpi_alg)pinned;
    return t->binomial_bytes >= 0 && bytes >= t->binomial_bytes ? MPI_ALG_BINOMIAL
                                                                : MPI_ALG_NATIVE;
  }
  if (pinned == MPI_ALG_NATIVE || pinned == MPI_ALG_RECURSIVE_DOUBLING ||
      (pinned == MPI_ALG_RING && ring_fits))
    return (enum mpi_alg)pinned;
  if (t->ring_bytes >= 0 && bytes >= t->ring_bytes && ring_fits) return MPI_ALG_RING;
  if (bytes < t->rd_max_bytes) return MPI_ALG_RECURSIVE_DOUBLING;
  return MPI_ALG_NATIVE;
}

/* libnbc's value of each algorithm's variable (0: leave libnbc's own choice). */
static int nbc_value(enum mpi_alg alg) {
  switch (alg) {
  case MPI_ALG_RING: return NBC_IALLREDUCE_RING;
  case MPI_ALG_RECURSIVE_DOUBLING: return NBC_IALLREDUCE_RECURSIVE_DOUBLING;
  case MPI_ALG_BINOMIAL: return NBC_IREDUCE_BINOMIAL;
  default: return 0;
  }
}

enum mpi_alg mpi_algo_push(struct mpi_state *st, enum mpi_algo which,
                           const struct mlcomm_op *op, int pinned, size_t n) {
  struct mpi_algo_var *v = &st->algo[which];
  v->pushed = false;
  enum mpi_alg alg = v->found ? choose(st, which, op, pinned, n) : MPI_ALG_NATIVE;
  int want = nbc_value(alg);
  if (want == 0) return MPI_ALG_NATIVE;
  if (MPI_T_cvar_read(v->handle, &v->saved) != MPI_SUCCESS) return MPI_ALG_NATIVE;
  v->pushed = MPI_T_cvar_write(v->handle, &want) == MPI_SUCCESS;
  return v->pushed ? alg : MPI_ALG_NATIVE;
}

void mpi_algo_pop(struct mpi_state *st, enum mpi_algo which) {
  struct mpi_algo_var *v = &st->algo[which];
  if (v->pushed) MPI_T_cvar_write(v->handle, &v->saved);
  v->pushed = false;
}
