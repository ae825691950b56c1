/*
 * allgather_bw - mlcommAllGather vs MPI_Allgather.
 * As in nccl-tests, size and count are the gathered total (nranks blocks of count/nranks
 * elements); busbw = algbw * (n-1)/n, since each rank receives the n-1 blocks it lacks.
 */
#include "harness.h"

static void counts(hbCall *c) {
  c->sendCount = c->count / (size_t)c->nranks;
  c->recvCount = c->count;
  c->checkCount = c->count;
}

static mlcommResult_t run(const hbCall *c) {
  if (!c->async)
    return mlcommAllGather(c->sendbuff, c->recvbuff, c->sendCount, c->type, c->comm);
  mlcommRequest_t req;
  return hbWait(mlcommAllGatherAsync(c->sendbuff, c->recvbuff, c->sendCount, c->type, c->comm,
                                     &req),
                &req);
}

static int runMpi(const hbCall *c) {
  int n = (int)c->sendCount;
  if (!c->async)
    return MPI_Allgather(c->sendbuff, n, c->mpiType, c->recvbuff, n, c->mpiType, c->mpiComm);
  MPI_Request req;
  int err = MPI_Iallgather(c->sendbuff, n, c->mpiType, c->recvbuff, n, c->mpiType, c->mpiComm,
                           &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
}

/* element i of the result is element i % sendCount of rank i / sendCount's input */
static int64_t expected(const hbCall *c, size_t i) {
  return hbInput(c, (int)(i / c->sendCount), i % c->sendCount);
}

static const hbCollective kAllGather = {
    .bench = "allgather_bw",
    .call = "mlcommAllGather",
    .usesOp = 0,
    .usesRoot = 0,
    .blocked = 1,
    .busbwFactor = hbFactorGather,
    .counts = counts,
    .run = run,
    .runMpi = runMpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hbMain(argc, argv, &kAllGather); }
