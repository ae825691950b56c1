/*
 * reduce_scatter_bw - mlcommReduceScatter vs MPI_Reduce_scatter_block.
 * As in nccl-tests, size and count are the total input (nranks blocks of count/nranks
 * elements); rank r receives reduced block r. busbw = algbw * (n-1)/n.
 */
#include "harness.h"

static void counts(hbCall *c) {
  c->sendCount = c->count;
  c->recvCount = c->count / (size_t)c->nranks;
  c->checkCount = c->recvCount;
}

static mlcommResult_t run(const hbCall *c) {
  if (!c->async)
    return mlcommReduceScatter(c->sendbuff, c->recvbuff, c->recvCount, c->type, c->op,
                               c->comm);
  mlcommRequest_t req;
  return hbWait(mlcommReduceScatterAsync(c->sendbuff, c->recvbuff, c->recvCount, c->type,
                                         c->op, c->comm, &req),
                &req);
}

static int runMpi(const hbCall *c) {
  int n = (int)c->recvCount;
  if (!c->async)
    return MPI_Reduce_scatter_block(c->sendbuff, c->recvbuff, n, c->mpiType, c->mpiOp,
                                    c->mpiComm);
  MPI_Request req;
  int err = MPI_Ireduce_scatter_block(c->sendbuff, c->recvbuff, n, c->mpiType, c->mpiOp,
                                      c->mpiComm, &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
}

/* element i of this rank's block is element rank*recvCount + i of the full reduction */
static int64_t expected(const hbCall *c, size_t i) {
  return hbReduced(c, (size_t)c->rank * c->recvCount + i);
}

static const hbCollective kReduceScatter = {
    .bench = "reduce_scatter_bw",
    .call = "mlcommReduceScatter",
    .usesOp = 1,
    .usesRoot = 0,
    .blocked = 1,
    .busbwFactor = hbFactorGather,
    .counts = counts,
    .run = run,
    .runMpi = runMpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hbMain(argc, argv, &kReduceScatter); }
