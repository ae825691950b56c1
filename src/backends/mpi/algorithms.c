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

/* The algorithm for this call, or 0 to leave libnbc's own choice. Depends only on
 * values every rank shares (size, rank count). */
static int choose(const struct mpi_state *st, enum mpi_algo which, const struct mlcomm_op *op,
                  size_t n) {
  const struct mlcomm_tuning *t = &st->comm->tuning;
  int64_t bytes = (int64_t)(n * mlcomm_type_size(op->dtype));
  if (st->comm->nranks < 2) return 0;
  if (which == MPI_ALGO_IREDUCE)
    return t->mpi_binomial_bytes >= 0 && bytes >= t->mpi_binomial_bytes ? NBC_IREDUCE_BINOMIAL : 0;
  /* The ring gives every rank a block: it needs at least one element per rank. */
  if (t->mpi_ring_bytes >= 0 && bytes >= t->mpi_ring_bytes && n >= (size_t)st->comm->nranks)
    return NBC_IALLREDUCE_RING;
  if (bytes < t->mpi_rd_max_bytes) return NBC_IALLREDUCE_RECURSIVE_DOUBLING;
  return 0;
}

void mpi_algo_push(struct mpi_state *st, enum mpi_algo which, const struct mlcomm_op *op,
                   size_t n) {
  struct mpi_algo_var *v = &st->algo[which];
  v->pushed = false;
  int want = v->found ? choose(st, which, op, n) : 0;
  if (want == 0) return;
  if (MPI_T_cvar_read(v->handle, &v->saved) != MPI_SUCCESS) return;
  v->pushed = MPI_T_cvar_write(v->handle, &want) == MPI_SUCCESS;
}

void mpi_algo_pop(struct mpi_state *st, enum mpi_algo which) {
  struct mpi_algo_var *v = &st->algo[which];
  if (v->pushed) MPI_T_cvar_write(v->handle, &v->saved);
  v->pushed = false;
}
