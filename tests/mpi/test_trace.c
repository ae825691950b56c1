/*
 * MLCOMM_DEBUG=TRACE (debugLevel 3): one line per call, when it completes, giving the
 * op, its sequence number, count, type and op, bytes, the transport and algorithm that
 * carried it, its time and outcome. This program captures its own stderr while it
 * makes known calls, then checks every line it expects, and that each call gave one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static const char *expected_transport(void) {
  return tc_transport == mlcommTransportMpi ? "mpi" : tc_transport == mlcommTransportShm ? "shm" : NULL;
}

/* The trace lines (after "TRACE request.c:NNN ") of the captured text, one per slot. */
static int trace_lines(char *text, char **lines, int max) {
  int n = 0;
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
    static const char tag[] = " TRACE request.c:";
    char *t = strstr(l, tag);
    if (!t) continue;
    char *body = strchr(t + sizeof tag - 1, ' '); /* after the line number */
    if (body) lines[n++] = body + 1;
  }
  return n;
}

static const char *find(char **lines, int n, const char *prefix) {
  for (int i = 0; i < n; i++)
    if (strncmp(lines[i], prefix, strlen(prefix)) == 0) return lines[i];
  return NULL;
}

static int count(char **lines, int n, const char *prefix) {
  int c = 0;
  for (int i = 0; i < n; i++) c += strncmp(lines[i], prefix, strlen(prefix)) == 0;
  return c;
}

/* "..., shm/pipeline, 0.123 ms, success": transport, algorithm and a time >= 0. */
static void check_tail(const char *line, const char *what, const char *want) {
  if (!CHECK(line != NULL, "no trace line for %s", what)) return;
  char transport[16] = "", alg[32] = "", outcome[32] = "";
  double ms = -1;
  const char *tail = strstr(line, " bytes, ");
  if (!CHECK(tail != NULL, "%s: no bytes field in '%s'", what, line)) return;
  int got = sscanf(tail, " bytes, %15[^/]/%31[^,], %lf ms, %31s", transport, alg, &ms, outcome);
  CHECK(got == 4, "%s: '%s' does not read as transport/alg, time, outcome", what, line);
  CHECK(ms >= 0, "%s: time %f", what, ms);
  CHECK(strcmp(outcome, "success") == 0, "%s: outcome '%s'", what, outcome);
  if (want) CHECK(strcmp(transport, want) == 0, "%s: carried by '%s', expected %s", what, transport, want);
  CHECK(alg[0] != '\0', "%s: empty algorithm", what);
}

int main(int argc, char **argv) {
  tc_init(&argc, &argv);
  fflush(stderr);
  char path[] = "/tmp/mlcomm_trace_XXXXXX";
  int fd = mkstemp(path);
  int saved = dup(2);
  if (fd < 0 || saved < 0) tc_skip("cannot capture stderr (mkstemp/dup failed)");
  dup2(fd, 2);

  mlcommConfig_t cfg;
  tc_config(&cfg);
  cfg.debugLevel = 3;
  mlcommComm_t comm = NULL;
  mlcommResult_t init = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  int n = tc_nranks, me = tc_rank;
  float f[1000], g[1000];
  int gathered[64 * 10], mine[10];
  double d[5] = {1, 2, 3, 4, 5};
  for (int i = 0; i < 1000; i++) f[i] = (float)i;
  for (int i = 0; i < 10; i++) mine[i] = me;
  if (init == mlcommSuccess) {
    mlcommAllReduce(f, g, 1000, mlcommFloat32, mlcommSum, comm);
    mlcommAllReduce(f, f, 1000, mlcommFloat32, mlcommMax, comm); /* in place */
    mlcommBroadcast(f, f, 3, mlcommInt32, n - 1, comm);
    mlcommAllGather(mine, gathered, 10, mlcommInt32, comm);
    mlcommBarrier(comm);
    mlcommAllReduce(NULL, NULL, 0, mlcommFloat64, mlcommSum, comm); /* nothing to move */
    if (n >= 2 && me < 2) {
      if (me == 0) mlcommSend(d, 5, mlcommFloat64, 1, 7, comm);
      else mlcommRecv(d, 5, mlcommFloat64, 0, 7, comm, NULL);
    }
    mlcommCommDestroy(comm);
  }
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  CHECK_RES(init, mlcommSuccess);

  off_t size = lseek(fd, 0, SEEK_END);
  char *text = calloc((size_t)size + 1, 1);
  if (text && size > 0) {
    lseek(fd, 0, SEEK_SET);
    if (read(fd, text, (size_t)size) != size) text[0] = '\0';
  }
  close(fd);
  unlink(path);
  char *copy = text ? strdup(text) : NULL;
  char *lines[256];
  int nl = copy ? trace_lines(copy, lines, 256) : 0;

  CHECK(count(lines, nl, "mlcommAllReduce seq") == 3, "%d allreduce lines, expected 3",
        count(lines, nl, "mlcommAllReduce seq"));
  const char *l = find(lines, nl, "mlcommAllReduce seq 0: 1000 x float sum, 4000 bytes, ");
  check_tail(l, "allreduce sum", expected_transport());
  l = find(lines, nl, "mlcommAllReduce seq 1: 1000 x float max in place, 4000 bytes, ");
  check_tail(l, "allreduce max in place", expected_transport());
  char want[128];
  snprintf(want, sizeof want, "mlcommBroadcast seq 2: 3 x int32 root %d", n - 1);
  l = find(lines, nl, want);
  check_tail(l, "broadcast", expected_transport());
  snprintf(want, sizeof want, "mlcommAllGather seq 3: 10 x int32, %d bytes, ", 40 * n);
  check_tail(find(lines, nl, want), "allgather", expected_transport());
  CHECK(count(lines, nl, "mlcommBarrier seq 4: 0 bytes, ") == 1, "one barrier line");
  l = find(lines, nl, "mlcommAllReduce seq 5: 0 x double sum, 0 bytes, none/-, ");
  CHECK(l != NULL, "the empty allreduce is traced as carried by no transport");
  if (n >= 2 && me == 0)
    check_tail(find(lines, nl, "mlcommSend seq 0: 5 x double to 1 tag 7, 40 bytes, mpi/"), "send",
               "mpi");
  if (n >= 2 && me == 1)
    check_tail(find(lines, nl, "mlcommRecv seq 0: 5 x double from 0 tag 7, 40 bytes, mpi/"), "recv",
               "mpi");
  if (tc_failed_here() > 0) fprintf(stderr, "[rank %d] captured:\n%s\n", me, text ? text : "");
  free(copy);
  free(text);
  return tc_finish();
}
