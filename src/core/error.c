/* Result names, last-error sentences, and the debug log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

static _Thread_local char thread_last_error[MLCOMM_ERRMSG_LEN];
static int debug_level = -1; /* -1: not yet read from MLCOMM_DEBUG */

static const char *const result_names[mlcommNumResults] = {
    [mlcommSuccess] = "success",
    [mlcommInvalidArgument] = "invalid argument",
    [mlcommSystemError] = "system error",
    [mlcommInternalError] = "internal error",
    [mlcommRemoteError] = "remote error",
    [mlcommTimeout] = "timeout",
    [mlcommInProgress] = "in progress",
    [mlcommUnsupported] = "unsupported",
};

MLCOMM_API const char *mlcommGetErrorString(mlcommResult_t result) {
  if ((int)result < 0 || result >= mlcommNumResults) return "unknown result code";
  return result_names[result];
}

MLCOMM_API const char *mlcommGetLastError(mlcommComm_t comm) {
  /* An invalid handle must not be dereferenced: only registered comms are read. */
  if (comm != NULL && mlcomm_comm_check(comm, NULL) == mlcommSuccess) return comm->last_error;
  return thread_last_error;
}

int mlcomm_debug_level(void) {
  if (debug_level < 0) debug_level = mlcomm_debug_from_env();
  return debug_level;
}

/* Logging is process-wide; each new communicator sets it from its resolved config, in
 * which an explicit field has already won over MLCOMM_DEBUG. */
void mlcomm_set_debug_level(int level) { debug_level = level < 0 ? 0 : level; }

static int world_rank(void) {
  int init = 0, fin = 0, rank = -1;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

static void vlog(int level, const char *file, int line, const char *fmt, va_list ap) {
  static const char *const names[] = {"", "WARN", "INFO", "TRACE"};
  char msg[MLCOMM_ERRMSG_LEN];
  vsnprintf(msg, sizeof msg, fmt, ap);
  const char *base = strrchr(file, '/');
  fprintf(stderr, "[mlcomm rank %d pid %d] %s %s:%d %s\n", world_rank(), (int)getpid(),
          names[level], base ? base + 1 : file, line, msg);
}

void mlcomm_log(int level, const char *file, int line, const char *fmt, ...) {
  if (level > mlcomm_debug_level()) return;
  va_list ap;
  va_start(ap, fmt);
  vlog(level, file, line, fmt, ap);
  va_end(ap);
}

mlcommResult_t mlcomm_verror(struct mlcomm_comm *comm, mlcommResult_t res, const char *fmt,
                             va_list ap) {
  vsnprintf(thread_last_error, sizeof thread_last_error, fmt, ap);
  if (comm != NULL) memcpy(comm->last_error, thread_last_error, sizeof comm->last_error);
  if (mlcomm_debug_level() >= MLCOMM_LOG_WARN)
    mlcomm_log(MLCOMM_LOG_WARN, __FILE__, __LINE__, "%s: %s", mlcommGetErrorString(res),
               thread_last_error);
  return res;
}

mlcommResult_t mlcomm_error(struct mlcomm_comm *comm, mlcommResult_t res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  mlcomm_verror(comm, res, fmt, ap);
  va_end(ap);
  return res;
}

mlcommResult_t mlcomm_mpi_error(struct mlcomm_comm *comm, int mpi_rc, const char *what) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  if (MPI_Error_string(mpi_rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", mpi_rc);
  int cls = 0;
  MPI_Error_class(mpi_rc, &cls);
  /* A failed peer shows up as a communication error class in MPI; the rest is ours. */
  mlcommResult_t res = (cls == MPI_ERR_OTHER || cls == MPI_ERR_INTERN || cls == MPI_ERR_UNKNOWN)
                           ? mlcommRemoteError
                           : mlcommInternalError;
  return mlcomm_error(comm, res, "%s failed: %s (MPI error class %d)", what, text, cls);
}

void mlcomm_append(char *buf, size_t len, const char *fmt, ...) {
  size_t used = strlen(buf);
  if (used + 1 >= len) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, len - used, fmt, ap);
  va_end(ap);
}
