/*
 * Algorithm choice inside Open MPI's libnbc, per call, through the MPI tool
 * interface. Measured on 2 and 4 ranks (docs/architecture.md): libnbc's default
 * non-blocking allreduce on fewer than four ranks is a binomial reduce+broadcast and
 * its default non-blocking reduce is a chain, each about half the speed of the
 * blocking call; its ring allreduce and binomial reduce are at or above it. The
 * variable is set just before the one MPI call and restored right after, so the
 * user's own MPI calls never see a change. Every rank decides from the same size, as
 * the variables' MPI_T scope requires. On an MPI without these variables nothing
 * happens.
 */
#include "backends/mpi/mpi_internal.h"
#include "collectives/reduce.h"

static const struct {
  const char *cvar;
  int value; /* libnbc's enum: 1 = ring for iallreduce, 2 = binomial for ireduce */
} algos[MPI_ALGO_COUNT] = {
    [MPI_ALGO_IALLREDUCE] = {"coll_libnbc_iallreduce_algorithm", 1},
    [MPI_ALGO_IREDUCE] = {"coll_libnbc_ireduce_algorithm", 2},
};

void mpi_algo_init(struct mpi_state *st) {
  int provided, index, count;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return;
  for (int i = 0; i < MPI_ALGO_COUNT; i++) {
    struct mpi_algo_var *v = &st->algo[i];
    v->found = MPI_T_cvar_get_index(algos[i].cvar, &index) == MPI_SUCCESS &&
               MPI_T_cvar_handle_alloc(index, NULL, &v->handle, &count) == MPI_SUCCESS;
  }
}

void mpi_algo_fini(struct mpi_state *st) {
  for (int i = 0; i < MPI_ALGO_COUNT; i++)
    if (st->algo[i].found) MPI_T_cvar_handle_free(&st->algo[i].handle);
}

static bool qualifies(const struct mpi_state *st, enum mpi_algo which,
                      const struct mlcomm_op *op, size_t n) {
  const struct mlcomm_tuning *t = &st->comm->tuning;
  int64_t at = which == MPI_ALGO_IALLREDUCE ? t->mpi_ring_bytes : t->mpi_binomial_bytes;
  int64_t bytes = (int64_t)(n * mlcomm_type_size(op->dtype));
  if (at < 0 || bytes < at || st->comm->nranks < 2) return false;
  /* The ring gives every rank a block: it needs at least one element per rank. */
  return which != MPI_ALGO_IALLREDUCE || n >= (size_t)st->comm->nranks;
}

void mpi_algo_push(struct mpi_state *st, enum mpi_algo which, const struct mlcomm_op *op,
                   size_t n) {
  struct mpi_algo_var *v = &st->algo[which];
  v->pushed = false;
  if (!v->found || !qualifies(st, which, op, n)) return;
  int want = algos[which].value;
  if (MPI_T_cvar_read(v->handle, &v->saved) != MPI_SUCCESS) return;
  v->pushed = MPI_T_cvar_write(v->handle, &want) == MPI_SUCCESS;
}

void mpi_algo_pop(struct mpi_state *st, enum mpi_algo which) {
  struct mpi_algo_var *v = &st->algo[which];
  if (v->pushed) MPI_T_cvar_write(v->handle, &v->saved);
  v->pushed = false;
}
