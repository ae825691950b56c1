/*
 * Configuration: the versioned mlcommConfig_t and the MLCOMM_* variables behind its
 * fields, plus the core's other settings. Transports declare their own tuning
 * variables beside their code (MLCOMM_PARAM); docs/configuration.md lists them all.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/internal.h"
#include "core/params.h"

#define DEFAULT_TIMEOUT_MS 300000 /* five minutes: long enough for any sane collective */

/* The core's own variables; every transport declares its own beside its code. */
static const struct mlcomm_param_word transport_words[] = {
    {"auto", mlcommTransportAuto}, {"mpi", mlcommTransportMpi}, {"shm", mlcommTransportShm},
    {"nccl", mlcommTransportNccl}, {"hier", mlcommTransportHier}, {NULL, 0}};
MLCOMM_PARAM_WORDS(Transport, "MLCOMM_TRANSPORT", mlcommTransportAuto, 1, 0, transport_words);
MLCOMM_PARAM(TimeoutMs, "MLCOMM_TIMEOUT_MS", DEFAULT_TIMEOUT_MS, 0, INT_MAX);
static const struct mlcomm_param_word debug_words[] = {
    {"NONE", 0}, {"WARN", MLCOMM_LOG_WARN}, {"INFO", MLCOMM_LOG_INFO},
    {"TRACE", MLCOMM_LOG_TRACE}, {NULL, 0}};
MLCOMM_PARAM_WORDS(Debug, "MLCOMM_DEBUG", 0, 0, MLCOMM_LOG_TRACE, debug_words);
/* After a timeout, how long the timed-out rank waits for its peers' answers (diag.c). */
MLCOMM_PARAM(DiagMs, "MLCOMM_DIAG_MS", 1000, 0, 60000);

int mlcomm_debug_from_env(void) {
  const char *text = getenv(mlcomm_param_Debug.env);
  int64_t level = 0;
  if (text && *text && !mlcomm_param_parse(&mlcomm_param_Debug, text, &level)) level = 0;
  return (int)level;
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
    int64_t transport, timeout, debug;
    MLCOMM_CHECK(mlcomm_param_env(&mlcomm_param_Transport, &transport));
    MLCOMM_CHECK(mlcomm_param_env(&mlcomm_param_TimeoutMs, &timeout));
    MLCOMM_CHECK(mlcomm_param_env(&mlcomm_param_Debug, &debug));
    out->transport = (int)transport;
    out->timeoutMs = (int)timeout;
    out->debugLevel = (int)debug;
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
