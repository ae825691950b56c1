/*
 * Configuration: the versioned mlcommConfig_t, the MLCOMM_* environment variables
 * behind each of its fields, and the tuning variables. Every variable is declared
 * here and documented in docs/configuration.md.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"

#define DEFAULT_TIMEOUT_MS 300000 /* five minutes: long enough for any sane collective */

/* Parses a whole decimal integer in [lo, hi]; anything else is an error naming var. */
static mlcommResult_t parse_int(const char *var, const char *text, int64_t lo, int64_t hi,
                                int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  while (end && (*end == ' ' || *end == '\t')) end++;
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "environment variable %s='%s' is not an integer in [%lld, %lld]", var,
                        text, (long long)lo, (long long)hi);
  *out = v;
  return mlcommSuccess;
}

static mlcommResult_t env_int(const char *var, int64_t lo, int64_t hi, int64_t *out) {
  const char *text = getenv(var);
  if (text == NULL || *text == '\0') return mlcommSuccess; /* keep *out */
  return parse_int(var, text, lo, hi, out);
}

static mlcommResult_t env_transport(int *out) {
  const char *text = getenv("MLCOMM_TRANSPORT");
  if (text == NULL || *text == '\0') return mlcommSuccess;
  int t = mlcomm_transport_from_name(text);
  if (t < 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "environment variable MLCOMM_TRANSPORT='%s' is not one of "
                        "auto, mpi, shm, nccl",
                        text);
  *out = t;
  return mlcommSuccess;
}

static mlcommResult_t env_debug(int *out) {
  const char *text = getenv("MLCOMM_DEBUG");
  if (text == NULL || *text == '\0') return mlcommSuccess;
  static const char *const names[] = {"NONE", "WARN", "INFO", "TRACE"};
  for (int i = 0; i < 4; i++)
    if (!strcasecmp(text, names[i])) {
      *out = i;
      return mlcommSuccess;
    }
  int64_t v = 0;
  MLCOMM_CHECK(parse_int("MLCOMM_DEBUG", text, 0, 3, &v));
  *out = (int)v;
  return mlcommSuccess;
}

/* The fields this library version knows, and the offset each ends at, so an older
 * caller's smaller struct is read only as far as it goes. */
#define FIELD_END(f) (offsetof(mlcommConfig_t, f) + sizeof(((mlcommConfig_t *)0)->f))

static mlcommResult_t check_user_config(const mlcommConfig_t *c) {
  if (c->magic != MLCOMM_CONFIG_MAGIC)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config: magic is 0x%x, expected 0x%x; initialise the struct with "
                        "MLCOMM_CONFIG_INITIALIZER",
                        c->magic, MLCOMM_CONFIG_MAGIC);
  if (c->size < FIELD_END(version) || c->size > 4096)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config: size is %zu, expected sizeof(mlcommConfig_t) (%zu); "
                        "initialise it with MLCOMM_CONFIG_INITIALIZER",
                        c->size, sizeof(mlcommConfig_t));
  if (c->version < MLCOMM_VERSION(0, 1, 0) || c->version > MLCOMM_VERSION(99, 99, 99))
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config: version is %u, not a version code of mlcomm (expected %d)",
                        c->version, MLCOMM_VERSION_CODE);
  return mlcommSuccess;
}

/* Takes a field from the caller's struct when their size covers it and they set it. */
#define TAKE(user, out, field)                                                             \
  do {                                                                                     \
    if ((user) && (user)->size >= FIELD_END(field) &&                                      \
        (user)->field != MLCOMM_CONFIG_UNDEF_INT)                                          \
      (out)->field = (user)->field;                                                        \
  } while (0)

mlcommResult_t mlcomm_config_resolve(const mlcommConfig_t *user, const mlcommConfig_t *inherit,
                                     mlcommConfig_t *out) {
  if (user) MLCOMM_CHECK(check_user_config(user));
  if (inherit) {
    *out = *inherit;
  } else {
    mlcommConfig_t defaults = MLCOMM_CONFIG_INITIALIZER;
    *out = defaults;
    out->transport = mlcommTransportAuto;
    out->timeoutMs = DEFAULT_TIMEOUT_MS;
    out->debugLevel = 0;
    int64_t timeout = out->timeoutMs;
    MLCOMM_CHECK(env_transport(&out->transport));
    MLCOMM_CHECK(env_int("MLCOMM_TIMEOUT_MS", 0, INT_MAX, &timeout));
    out->timeoutMs = (int)timeout;
    MLCOMM_CHECK(env_debug(&out->debugLevel));
  }
  TAKE(user, out, transport);
  TAKE(user, out, timeoutMs);
  TAKE(user, out, debugLevel);
  if (out->transport < 0 || out->transport >= mlcommNumTransports)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config.transport is %d, expected an mlcommTransport_t (0..%d)",
                        out->transport, mlcommNumTransports - 1);
  if (out->timeoutMs < 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config.timeoutMs is %d, expected >= 0 (0 disables the timeout)",
                        out->timeoutMs);
  if (out->debugLevel < 0 || out->debugLevel > 3)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "config.debugLevel is %d, expected 0 (silent) to 3 (trace)",
                        out->debugLevel);
  return mlcommSuccess;
}

/* Tuning variables: name, default, range. One table, read once per communicator. */
struct tuning_param {
  const char *env;
  int64_t def, lo, hi;
  size_t offset;
};

static const struct tuning_param tuning_params[] = {
    {"MLCOMM_MPI_RING_BYTES", 4096, -1, INT64_MAX,
     offsetof(struct mlcomm_tuning, mpi_ring_bytes)},
    {"MLCOMM_MPI_RD_MAX_BYTES", 512, 0, INT64_MAX,
     offsetof(struct mlcomm_tuning, mpi_rd_max_bytes)},
    {"MLCOMM_MPI_BINOMIAL_BYTES", 0, -1, INT64_MAX,
     offsetof(struct mlcomm_tuning, mpi_binomial_bytes)},
    {"MLCOMM_MPI_CHUNK_ELEMS", INT_MAX, 1, INT_MAX,
     offsetof(struct mlcomm_tuning, mpi_chunk_elems)},
    {"MLCOMM_MPI_STAGE_BYTES", 4 << 20, 4096, 1 << 30,
     offsetof(struct mlcomm_tuning, mpi_stage_bytes)},
    {"MLCOMM_MPI_STAGE_SLOTS", 3, 2, 16, offsetof(struct mlcomm_tuning, mpi_stage_slots)},
    {"MLCOMM_DIAG_MS", 1000, 0, 60000, offsetof(struct mlcomm_tuning, diag_ms)},
    {"MLCOMM_SHM_SLICE_BYTES", 256 << 10, 1024, 64 << 20,
     offsetof(struct mlcomm_tuning, shm_slice_bytes)},
    {"MLCOMM_SHM_SLOTS", 4, 2, 64, offsetof(struct mlcomm_tuning, shm_slots)},
    {"MLCOMM_SHM_SMALL_BYTES", 8192, 0, 1 << 20, offsetof(struct mlcomm_tuning, shm_small_bytes)},
    {"MLCOMM_SHM_POOL_BYTES", (int64_t)1 << 30, 0, (int64_t)1 << 40,
     offsetof(struct mlcomm_tuning, shm_pool_bytes)},
    {"MLCOMM_SHM_LIVENESS_MS", 200, 10, 60000, offsetof(struct mlcomm_tuning, shm_liveness_ms)},
    {"MLCOMM_SHM_NT_BYTES", 8 << 20, -1, INT64_MAX, offsetof(struct mlcomm_tuning, shm_nt_bytes)},
    {"MLCOMM_SHM_SPIN", 0, 0, 1, offsetof(struct mlcomm_tuning, shm_spin)},
    {"MLCOMM_SHM_CMA", 1, 0, 1, offsetof(struct mlcomm_tuning, shm_cma)},
    {"MLCOMM_SHM_CMA_ALLREDUCE_BYTES", 4 << 20, 0, INT64_MAX,
     offsetof(struct mlcomm_tuning, shm_cma_allreduce_bytes)},
};

mlcommResult_t mlcomm_tuning_read(struct mlcomm_tuning *out) {
  for (size_t i = 0; i < sizeof tuning_params / sizeof tuning_params[0]; i++) {
    const struct tuning_param *p = &tuning_params[i];
    int64_t *field = (int64_t *)((char *)out + p->offset);
    *field = p->def;
    MLCOMM_CHECK(env_int(p->env, p->lo, p->hi, field));
  }
  return mlcommSuccess;
}
