/*
 * Communicators: creation from MPI, split, destroy, abort, and the registry of live
 * handles that lets every entry point refuse a stale or foreign pointer instead of
 * dereferencing it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/transport.h"
#include "core/internal.h"
#include "core/params.h"

#define COMM_MAGIC 0x6d6c636du

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mlcomm_comm *registry;

MLCOMM_API mlcommResult_t mlcommGetVersion(int *version) {
  if (version == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument, "mlcommGetVersion: version is NULL");
  *version = MLCOMM_VERSION_CODE;
  return mlcommSuccess;
}

static bool registered(const struct mlcomm_comm *comm) {
  for (struct mlcomm_comm *c = registry; c; c = c->registry_next)
    if (c == comm) return true;
  return false;
}

mlcommResult_t mlcomm_comm_check(struct mlcomm_comm *comm, const char *fn) {
  if (comm == NULL) {
    if (fn == NULL) return mlcommInvalidArgument;
    return mlcomm_error(NULL, mlcommInvalidArgument, "%s: comm is NULL", fn);
  }
  pthread_mutex_lock(&registry_lock);
  bool ok = registered(comm);
  pthread_mutex_unlock(&registry_lock);
  if (!ok) {
    if (fn == NULL) return mlcommInvalidArgument;
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "%s: comm %p is not a live communicator (destroyed, aborted, or never "
                        "created by mlcommCommInitFromMPI/mlcommCommSplit)",
                        fn, (void *)comm);
  }
  return mlcommSuccess;
}

struct mlcomm_comm *mlcomm_comm_or_null(struct mlcomm_comm *comm) {
  return comm != NULL && mlcomm_comm_check(comm, NULL) == mlcommSuccess ? comm : NULL;
}

void mlcomm_comm_foreach(void (*fn)(struct mlcomm_comm *, void *), void *arg) {
  pthread_mutex_lock(&registry_lock);
  struct mlcomm_comm *c = registry;
  while (c) {
    struct mlcomm_comm *next = c->registry_next;
    fn(c, arg);
    c = next;
  }
  pthread_mutex_unlock(&registry_lock);
}

static void registry_add(struct mlcomm_comm *comm) {
  pthread_mutex_lock(&registry_lock);
  comm->registry_next = registry;
  registry = comm;
  pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(struct mlcomm_comm *comm) {
  pthread_mutex_lock(&registry_lock);
  for (struct mlcomm_comm **p = &registry; *p; p = &(*p)->registry_next)
    if (*p == comm) {
      *p = comm->registry_next;
      break;
    }
  pthread_mutex_unlock(&registry_lock);
}

static void free_mpi_comms(struct mlcomm_comm *comm) {
  MPI_Comm *dups[] = {&comm->coll_comm, &comm->p2p_comm, &comm->diag_comm};
  for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++)
    if (*dups[i] != MPI_COMM_NULL) MPI_Comm_free(dups[i]);
}

static mlcommResult_t dup_comm(struct mlcomm_comm *comm, MPI_Comm *out) {
  MLCOMM_MPI_CHECK(comm, MPI_Comm_dup(comm->user_comm, out));
  MLCOMM_MPI_CHECK(comm, MPI_Comm_set_errhandler(*out, MPI_ERRORS_RETURN));
  return mlcommSuccess;
}

/* Every rank learns whether every rank is ready, so that a bad argument or environment
 * on one rank fails all of them instead of leaving the others in a collective. */
static mlcommResult_t agree(MPI_Comm mpi, mlcommResult_t local, const char *fn) {
  int ok = local == mlcommSuccess, all = 0;
  if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, mpi) != MPI_SUCCESS)
    return mlcomm_error(NULL, mlcommInternalError, "%s: MPI_Allreduce failed while agreeing", fn);
  if (!all && ok)
    return mlcomm_error(NULL, mlcommRemoteError,
                        "%s: another rank refused its arguments or environment; see its "
                        "mlcommGetLastError()",
                        fn);
  return local;
}

/* Abort: every request fails, and transports that can tell their peers (the shared-
 * memory one) release them. The duplicate MPI communicators and the states of
 * transports without an abort hook are left alone: MPI may still own buffers of
 * collectives in flight. */
static void transports_abort(struct mlcomm_comm *comm) {
  for (int i = 0; i < comm->ntransports; i++) {
    if (comm->transports[i].t->abort) comm->transports[i].t->abort(comm->transports[i].state);
    if (comm->transports[i].tune) mlcomm_tune_fini(comm->transports[i].tune);
    free(comm->transports[i].tune);
  }
  comm->ntransports = 0;
}

/* Frees comm, already out of the registry (if it was in it). Aborting: every request
 * fails and MPI's communicators stay (transports_abort); otherwise nothing is in
 * flight and everything goes. */
static void comm_teardown(struct mlcomm_comm *comm, bool aborting) {
  if (aborting) {
    /* Requests the caller holds handles to stay resolvable and report the abort. */
    mlcomm_request_abandon_all(comm);
    transports_abort(comm);
  } else {
    mlcomm_transports_fini(comm);
    free_mpi_comms(comm);
    if (comm->owns_user_comm) MPI_Comm_free(&comm->user_comm);
  }
  mlcomm_request_free_spares(comm);
  free(comm->peers);
  free(comm->params);
  comm->magic = 0;
  free(comm);
}

/* Collective over mpi: the communicator proper, from resolved settings (params is
 * taken over). Takes ownership of mpi when owns_mpi; publish puts it in the registry
 * (a transport's internal communicators stay out of it: only their owner drives them). */
static mlcommResult_t comm_build(struct mlcomm_comm **out, MPI_Comm mpi, bool owns_mpi,
                                 const mlcommConfig_t *config, int64_t *params, bool publish,
                                 const char *fn) {
  struct mlcomm_comm *comm = calloc(1, sizeof *comm);
  if (comm == NULL) {
    free(params);
    return mlcomm_error(NULL, mlcommSystemError, "%s: out of memory", fn);
  }
  comm->magic = COMM_MAGIC;
  comm->config = *config;
  comm->params = params;
  comm->user_comm = mpi;
  comm->coll_comm = comm->p2p_comm = comm->diag_comm = MPI_COMM_NULL;
  comm->node_ranks = comm->node_cpus = comm->nnodes = 1;
  comm->node_ranks_min = comm->node_ranks_max = 1;
  comm->spin_ms = 0.05;
  mlcomm_set_debug_level(config->debugLevel);
  mlcomm_params_warn_unknown();
  MPI_Comm_rank(mpi, &comm->rank);
  MPI_Comm_size(mpi, &comm->nranks);

  mlcommResult_t res = dup_comm(comm, &comm->coll_comm);
  if (res == mlcommSuccess) res = dup_comm(comm, &comm->p2p_comm);
  if (res == mlcommSuccess) res = dup_comm(comm, &comm->diag_comm);
  if (res == mlcommSuccess) res = mlcomm_peers_gather(comm);
  if (res == mlcommSuccess) mlcomm_topology_note(comm);
  if (res == mlcommSuccess) res = mlcomm_transports_init(comm);
  res = agree(comm->coll_comm != MPI_COMM_NULL ? comm->coll_comm : mpi, res, fn);
  if (res != mlcommSuccess) {
    comm_teardown(comm, false); /* the caller keeps mpi: owns_user_comm is not set yet */
    return res;
  }
  comm->owns_user_comm = owns_mpi;
  if (publish) registry_add(comm);
  MLCOMM_INFO("comm %p: rank %d of %d, transport %s, timeout %d ms%s", (void *)comm, comm->rank,
              comm->nranks, mlcomm_transport_name(config->transport), config->timeoutMs,
              publish ? "" : " (internal)");
  *out = comm;
  return mlcommSuccess;
}

/* Collective over mpi. Takes ownership of mpi when owns_mpi. */
static mlcommResult_t comm_create(struct mlcomm_comm **out, MPI_Comm mpi, bool owns_mpi,
                                  const mlcommConfig_t *user, const mlcommConfig_t *inherit,
                                  const char *fn) {
  mlcommConfig_t config;
  int64_t *params = NULL;
  mlcommResult_t res = mlcomm_config_resolve(user, inherit, &config);
  if (res == mlcommSuccess) res = mlcomm_params_read(&params);
  res = agree(mpi, res, fn);
  if (res != mlcommSuccess) {
    free(params);
    return res;
  }
  return comm_build(out, mpi, owns_mpi, &config, params, true, fn);
}

mlcommResult_t mlcomm_comm_from_mpi(struct mlcomm_comm **out, MPI_Comm mpi,
                                    const mlcommConfig_t *inherit, const char *fn) {
  return comm_create(out, mpi, true, NULL, inherit, fn);
}

mlcommResult_t mlcomm_subcomm_create(struct mlcomm_comm *parent, MPI_Comm mpi, int transport,
                                     struct mlcomm_comm **out) {
  /* The parent's values, not this moment's environment: one communicator, one setting. */
  int64_t *params = mlcomm_params_dup(parent->params);
  if (params == NULL) return mlcomm_error(parent, mlcommSystemError, "out of memory for settings");
  mlcommConfig_t config = parent->config;
  config.transport = transport;
  return comm_build(out, mpi, true, &config, params, false, "an internal communicator");
}

void mlcomm_subcomm_destroy(struct mlcomm_comm *sub, bool aborting) {
  if (sub) comm_teardown(sub, aborting);
}

MLCOMM_API mlcommResult_t mlcommCommInitFromMPI(mlcommComm_t *comm, MPI_Comm mpiComm,
                                                const mlcommConfig_t *config) {
  static const char fn[] = "mlcommCommInitFromMPI";
  if (comm == NULL) return mlcomm_error(NULL, mlcommInvalidArgument, "%s: comm (the output) is NULL", fn);
  *comm = NULL;
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "%s: MPI is %s; call MPI_Init first", fn,
                        fin ? "already finalized" : "not initialised");
  if (mpiComm == MPI_COMM_NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument, "%s: mpiComm is MPI_COMM_NULL", fn);
  return comm_create(comm, mpiComm, false, config, NULL, fn);
}

MLCOMM_API mlcommResult_t mlcommCommSplit(mlcommComm_t comm, int color, int key,
                                          mlcommComm_t *newcomm, const mlcommConfig_t *config) {
  static const char fn[] = "mlcommCommSplit";
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  if (newcomm == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "%s: newcomm (the output) is NULL", fn);
  *newcomm = NULL;
  mlcommResult_t res = mlcommSuccess;
  if (color < 0 && color != MLCOMM_SPLIT_NOCOLOR)
    res = mlcomm_error(comm, mlcommInvalidArgument,
                       "%s: color is %d, expected >= 0 or MLCOMM_SPLIT_NOCOLOR", fn, color);
  res = agree(comm->coll_comm, res, fn);
  if (res != mlcommSuccess) {
    char why[MLCOMM_ERRMSG_LEN];
    snprintf(why, sizeof why, "%s", mlcommGetLastError(NULL));
    return mlcomm_error(comm, res, "%s", why);
  }
  MPI_Comm split = MPI_COMM_NULL;
  MLCOMM_MPI_CHECK(comm, MPI_Comm_split(comm->coll_comm,
                                        color == MLCOMM_SPLIT_NOCOLOR ? MPI_UNDEFINED : color,
                                        key, &split));
  if (split == MPI_COMM_NULL) return mlcommSuccess;
  res = comm_create(newcomm, split, true, config, config ? NULL : &comm->config, fn);
  if (res != mlcommSuccess) {
    MPI_Comm_free(&split);
    char why[MLCOMM_ERRMSG_LEN];
    snprintf(why, sizeof why, "%s", mlcommGetLastError(NULL));
    mlcomm_error(comm, res, "%s", why);
  }
  return res;
}

MLCOMM_API mlcommResult_t mlcommCommDestroy(mlcommComm_t comm) {
  static const char fn[] = "mlcommCommDestroy";
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  mlcomm_progress_all(); /* lets finished orphans go */
  if (comm->revoked) { /* MPI may still hold buffers of the failed calls: as abort */
    registry_remove(comm);
    comm_teardown(comm, true);
    return mlcommSuccess;
  }
  if (comm->nlive > 0)
    return mlcomm_error(comm, mlcommInProgress,
                        "%s: %d request(s) are still in flight on this communicator; wait for "
                        "them, or call mlcommCommAbort",
                        fn, comm->nlive);
  registry_remove(comm);
  comm_teardown(comm, false);
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommAbort(mlcommComm_t comm) {
  static const char fn[] = "mlcommCommAbort";
  MLCOMM_CHECK(mlcomm_comm_check(comm, fn));
  registry_remove(comm);
  MLCOMM_INFO("comm %p aborted", (void *)comm);
  comm_teardown(comm, true);
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommRank(mlcommComm_t comm, int *rank) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommRank"));
  if (rank == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommRank: rank is NULL");
  *rank = comm->rank;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommCount(mlcommComm_t comm, int *count) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommCount"));
  if (count == NULL) return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommCount: count is NULL");
  *count = comm->nranks;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommGetMPI(mlcommComm_t comm, MPI_Comm *mpiComm) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommGetMPI"));
  if (mpiComm == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommGetMPI: mpiComm is NULL");
  *mpiComm = comm->user_comm;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommGetConfig(mlcommComm_t comm, mlcommConfig_t *config) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommGetConfig"));
  if (config == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommGetConfig: config is NULL");
  *config = comm->config;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommSetStream(mlcommComm_t comm, void *stream) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommSetStream"));
  if (stream != NULL && !MLCOMM_HAVE_CUDA)
    return mlcomm_error(comm, mlcommUnsupported,
                        "mlcommCommSetStream: this build of mlcomm has no CUDA, so a stream "
                        "(%p) cannot be used; pass NULL or rebuild with -Dcuda=enabled",
                        stream);
  comm->cuda_stream = stream;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommCommGetStream(mlcommComm_t comm, void **stream) {
  MLCOMM_CHECK(mlcomm_comm_check(comm, "mlcommCommGetStream"));
  if (stream == NULL)
    return mlcomm_error(comm, mlcommInvalidArgument, "mlcommCommGetStream: stream is NULL");
  *stream = comm->cuda_stream;
  return mlcommSuccess;
}
