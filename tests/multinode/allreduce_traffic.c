/*
 * The load that internode_bytes.py measures: K allreduces of S bytes (float32 sum) on a
 * communicator of every rank, nothing else but creating and destroying it.
 *
 *   allreduce_traffic [-t auto|mpi|shm|nccl] [-s BYTES] [-k K]
 *
 * Each rank prints `RANK r NODE name` (its MPI processor name), so the counter can map
 * the per-rank traffic files to nodes without trusting the layout it asked for. Every
 * result is checked (rank r contributes r+1 in every element, so each element must be
 * exactly n(n+1)/2): a counter that measured a broken allreduce would measure nothing.
 * Exits 1 on a wrong result, 77 when the transport is not in this build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "mlcomm/mlcomm.h"

static _Noreturn void finish(int code)
{
  MPI_Finalize();
  exit(code);
}

int main(int argc, char **argv)
{
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);

  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  size_t bytes = 1u << 20;
  long iters = 5;
  for (int i = 1; i < argc; i++) {
    mlcommTransport_t t;
    if (strcmp(argv[i], "-t") == 0 && i + 1 < argc &&
        mlcommTransportFromName(argv[i + 1], &t) == mlcommSuccess) {
      cfg.transport = (int)t;
      i++;
    } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
      bytes = strtoull(argv[++i], NULL, 0);
    } else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
      iters = strtol(argv[++i], NULL, 0);
    } else {
      if (rank == 0)
        fprintf(stderr, "usage: %s [-t auto|mpi|shm|nccl] [-s BYTES] [-k K]\n", argv[0]);
      finish(2);
    }
  }

  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_Get_processor_name(name, &len);
  printf("RANK %d NODE %s\n", rank, name);
  fflush(stdout);

  mlcommComm_t comm = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  int worst = 0, mine = (int)r;
  MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (worst != (int)mlcommSuccess) {
    if (rank == 0)
      printf("%s: %s\n", worst == (int)mlcommUnsupported ? "SKIPPED" : "FAIL",
             mlcommGetLastError(NULL));
    finish(worst == (int)mlcommUnsupported ? 77 : 1);
  }

  size_t count = bytes / sizeof(float);
  float *buf = malloc(count ? count * sizeof *buf : 1);
  const float want = (float)nranks * (float)(nranks + 1) / 2;
  long bad = 0;
  for (long k = 0; k < iters; k++) {
    for (size_t i = 0; i < count; i++) buf[i] = (float)(rank + 1);
    r = mlcommAllReduce(buf, buf, count, mlcommFloat32, mlcommSum, comm);
    if (r != mlcommSuccess) {
      fprintf(stderr, "rank %d: allreduce %ld: %s\n", rank, k, mlcommGetLastError(comm));
      bad++;
      break;
    }
    for (size_t i = 0; i < count; i++) bad += buf[i] != want;
  }
  if (bad) fprintf(stderr, "rank %d: %ld wrong elements or failed calls\n", rank, bad);
  free(buf);
  mlcommCommDestroy(comm);

  long total = 0;
  MPI_Allreduce(&bad, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    printf("%ld allreduces of %zu bytes on %d ranks: %s\n", iters, bytes, nranks,
           total ? "WRONG" : "correct");
  finish(total ? 1 : 0);
}
