/* mpi_coll_bw - one MPI collective timed over a sweep of sizes, the way the mlcomm
 * benchmarks time theirs, so that any MPI library can be set beside mlcomm in one
 * table (bench/peers.sh). Plain MPI-3 and C11, nothing from mlcomm: it builds with
 * any MPI's compiler wrapper, e.g.
 *
 *   mpicc.mpich -O2 -std=c11 bench/peers/mpi_coll_bw.c -o mpi_coll_bw_mpich
 *   mpirun.mpich -np 2 ./mpi_coll_bw_mpich -c allreduce -b 8 -e 64M -f 4
 *
 * float32 throughout (sum for the reductions), host buffers from aligned_alloc(64),
 * out of place except broadcast (MPI_Bcast has one buffer). Per size: the buffers'
 * values are set and one call is checked against the expected result; then -w untimed
 * calls, a barrier, and -n timed calls. Each rank's time is its average per call, and
 * the row's time is the mean over ranks (the benchmarks' default, nccl-tests' too).
 * busbw uses nccl-tests' factors; sizes are rounded as the benchmarks round them.
 *
 * Rank 0 prints '#' header lines (the library's version string first) and one line
 * per size:  size count time_us algbw busbw wrong
 * Exit code 0 when every check passed, 1 when one did not or a buffer could not be
 * allocated, 2 on bad arguments. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum coll { ALLREDUCE, BROADCAST, REDUCE, ALLGATHER, REDUCE_SCATTER };
static const char *const coll_names[] = {"allreduce", "broadcast", "reduce", "allgather",
                                         "reduce_scatter"};

struct options {
  enum coll coll;
  size_t minbytes, maxbytes, factor;
  int iters, warmup;
};

static int parse_size(const char *s, size_t *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s) return -1;
  switch (*end) {
    case 'K': v <<= 10; end++; break;
    case 'M': v <<= 20; end++; break;
    case 'G': v <<= 30; end++; break;
    default: break;
  }
  if (*end != '\0') return -1;
  *out = (size_t)v;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: mpi_coll_bw [-c COLL] [-b SIZE] [-e SIZE] [-f N] [-n N] [-w N]\n"
          "  -c COLL  allreduce (default) broadcast reduce allgather reduce_scatter\n"
          "  -b SIZE  smallest size in bytes (default 8; K M G suffixes, powers of 1024)\n"
          "  -e SIZE  largest size in bytes (default 64M)\n"
          "  -f N     multiply the size by N per row (default 2, at least 2)\n"
          "  -n N     timed calls per size (default 20)\n"
          "  -w N     untimed calls per size, first (default 5)\n"
          "float32 (sum), host buffers; size is per rank, and the total of all blocks for\n"
          "allgather and reduce_scatter, as in nccl-tests.\n");
}

/* Sets the option flag names from val; nonzero when either is not valid. */
static int bad_flag(const char *flag, const char *val, struct options *o) {
  if (flag[0] != '-' || flag[1] == '\0' || flag[2] != '\0' || val[0] == '\0') return 1;
  char *end;
  long n = strtol(val, &end, 10);
  int is_int = *end == '\0';
  switch (flag[1]) {
    case 'c':
      for (size_t k = 0; k < sizeof coll_names / sizeof *coll_names; k++)
        if (strcmp(val, coll_names[k]) == 0) {
          o->coll = (enum coll)k;
          return 0;
        }
      return 1;
    case 'b': return parse_size(val, &o->minbytes);
    case 'e': return parse_size(val, &o->maxbytes);
    case 'f': if (!is_int || n < 2) return 1; o->factor = (size_t)n; return 0;
    case 'n': if (!is_int || n < 1) return 1; o->iters = (int)n; return 0;
    case 'w': if (!is_int || n < 0) return 1; o->warmup = (int)n; return 0;
    default: return 1;
  }
}

/* 0 on success, 1 after -h, -1 on a bad argument (message printed by rank 0). */
static int parse(int argc, char **argv, struct options *o, int rank) {
  *o = (struct options){ALLREDUCE, 8, 64u << 20, 2, 20, 5};
  for (int i = 1; i < argc; i++) {
    const char *flag = argv[i];
    if (strcmp(flag, "-h") == 0) {
      if (rank == 0) usage(stdout);
      return 1;
    }
    const char *val = i + 1 < argc ? argv[i + 1] : "";
    if (bad_flag(flag, val, o)) {
      if (rank == 0) {
        fprintf(stderr, "mpi_coll_bw: bad argument: '%s %s'\n", flag, val);
        usage(stderr);
      }
      return -1;
    }
    i++;
  }
  if (o->minbytes > o->maxbytes || o->maxbytes / sizeof(float) > INT32_MAX) {
    if (rank == 0) fprintf(stderr, "mpi_coll_bw: need -b <= -e and -e below 8 GiB\n");
    return -1;
  }
  return 0;
}

/* nccl-tests' bus factor for n ranks */
static double bus_factor(enum coll c, int n) {
  switch (c) {
    case ALLREDUCE: return 2.0 * (n - 1) / n;
    case ALLGATHER:
    case REDUCE_SCATTER: return (double)(n - 1) / n;
    default: return 1.0;
  }
}

/* One call on count elements (the total for allgather and reduce_scatter). */
static void call(enum coll c, float *send, float *recv, size_t count, int n) {
  int cnt = (int)count;
  switch (c) {
    case ALLREDUCE: MPI_Allreduce(send, recv, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
    case BROADCAST: MPI_Bcast(recv, cnt, MPI_FLOAT, 0, MPI_COMM_WORLD); break;
    case REDUCE: MPI_Reduce(send, recv, cnt, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD); break;
    case ALLGATHER:
      MPI_Allgather(send, cnt / n, MPI_FLOAT, recv, cnt / n, MPI_FLOAT, MPI_COMM_WORLD);
      break;
    case REDUCE_SCATTER:
      MPI_Reduce_scatter_block(send, recv, cnt / n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      break;
  }
}

/* Fills the inputs with small integers (exact in float), runs one call and counts the
 * elements of this rank's result that differ from the expected value. */
static long checked_call(enum coll c, float *send, float *recv, size_t count, int rank,
                         int n) {
  size_t block = (c == ALLGATHER || c == REDUCE_SCATTER) ? count / n : count;
  size_t in = c == ALLGATHER ? block : count;
  for (size_t i = 0; i < in; i++) send[i] = (float)((rank + 1) * (int)(1 + i % 7));
  for (size_t i = 0; i < count; i++) recv[i] = -1.0f;
  if (c == BROADCAST && rank == 0) memcpy(recv, send, count * sizeof(float));
  call(c, send, recv, count, n);
  long wrong = 0;
  double ranks_sum = n * (n + 1) / 2.0;
  size_t out = (c == REDUCE_SCATTER) ? block : count;
  if (c == REDUCE && rank != 0) out = 0;
  for (size_t i = 0; i < out; i++) {
    double expect;
    switch (c) {
      case ALLREDUCE:
      case REDUCE: expect = ranks_sum * (1 + i % 7); break;
      case BROADCAST: expect = 1 + i % 7; break;
      case ALLGATHER: expect = (double)(i / block + 1) * (1 + (i % block) % 7); break;
      default: expect = ranks_sum * (1 + (rank * block + i) % 7); break;
    }
    if (recv[i] != (float)expect) wrong++;
  }
  return wrong;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, n;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  struct options o;
  int rc = parse(argc, argv, &o, rank);
  if (rc != 0) {
    MPI_Finalize();
    return rc > 0 ? 0 : 2;
  }

  size_t bytes = (o.maxbytes + 63) / 64 * 64;
  float *send = aligned_alloc(64, bytes ? bytes : 64);
  float *recv = aligned_alloc(64, bytes ? bytes : 64);
  int ok = send && recv, all_ok;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_ok) {
    if (rank == 0) fprintf(stderr, "mpi_coll_bw: cannot allocate 2 x %zu bytes\n", bytes);
    MPI_Finalize();
    return 1;
  }
  memset(send, 0, bytes);  /* first touch outside the timing */
  memset(recv, 0, bytes);

  if (rank == 0) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len;
    MPI_Get_library_version(version, &len);
    char *nl = strchr(version, '\n');
    if (nl) *nl = '\0';
    printf("# library %s\n", version);
    printf("# mpi_coll_bw %s, nranks %d, float sum, iters %d, warmup %d\n",
           coll_names[o.coll], n, o.iters, o.warmup);
    printf("# size count time_us algbw busbw wrong\n");
  }

  size_t unit = (o.coll == ALLGATHER || o.coll == REDUCE_SCATTER) ? n * sizeof(float)
                                                                   : sizeof(float);
  size_t last = 0, next = o.minbytes;
  long wrong_total = 0;
  for (int more = 1; more;) {
    /* the benchmarks' sweep: multiply by -f (0 goes on to 1) while that stays within -e */
    size_t size = next;
    next = size == 0 ? 1 : size > o.maxbytes / o.factor ? 0 : size * o.factor;
    more = next != 0 && next <= o.maxbytes;
    size_t rounded = size / unit * unit;
    if (rounded == 0 || rounded == last) continue;
    last = rounded;
    size_t count = rounded / sizeof(float);
    long wrong = checked_call(o.coll, send, recv, count, rank, n), wrong_sum = 0;
    MPI_Reduce(&wrong, &wrong_sum, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    for (int i = 0; i < o.warmup; i++) call(o.coll, send, recv, count, n);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < o.iters; i++) call(o.coll, send, recv, count, n);
    double us = (MPI_Wtime() - t0) * 1e6 / o.iters, us_sum = 0;
    MPI_Reduce(&us, &us_sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      double t = us_sum / n, algbw = rounded / (t * 1e3);
      printf("%zu %zu %.3f %.6f %.6f %ld\n", rounded, count, t, algbw,
             algbw * bus_factor(o.coll, n), wrong_sum);
      fflush(stdout);
      wrong_total += wrong_sum;
    }
  }
  MPI_Bcast(&wrong_total, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  free(send);
  free(recv);
  MPI_Finalize();
  return wrong_total ? 1 : 0;
}
