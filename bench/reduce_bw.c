/*
 * reduce_bw - mlcommReduce vs MPI_Reduce.
 * The reduction of every rank's sendbuff lands in root's recvbuff only, so only root
 * checks; busbw = algbw (nccl-tests: each link carries the buffer once).
 */
#include "harness.h"

static void counts(hbCall *c) {
  c->sendCount = c->count;
  c->recvCount = c->count;
  c->checkCount = c->rank == c->root ? c->count : 0; /* recvbuff is unused elsewhere */
}

static mlcommResult_t run(const hbCall *c) {
  if (!c->async)
    return mlcommReduce(c->sendbuff, c->recvbuff, c->count, c->type, c->op, c->root, c->comm);
  mlcommRequest_t req;
  return hbWait(mlcommReduceAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->op, c->root,
                                  c->comm, &req),
                &req);
}

static int runMpi(const hbCall *c) {
  if (!c->async)
    return MPI_Reduce(c->sendbuff, c->recvbuff, (int)c->count, c->mpiType, c->mpiOp, c->root,
                      c->mpiComm);
  MPI_Request req;
  int err = MPI_Ireduce(c->sendbuff, c->recvbuff, (int)c->count, c->mpiType, c->mpiOp,
                        c->root, c->mpiComm, &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
}

static int64_t expected(const hbCall *c, size_t i) { return hbReduced(c, i); }

static const hbCollective kReduce = {
    .bench = "reduce_bw",
    .call = "mlcommReduce",
    .usesOp = 1,
    .usesRoot = 1,
    .blocked = 0,
    .busbwFactor = hbFactorOne,
    .counts = counts,
    .run = run,
    .runMpi = runMpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hbMain(argc, argv, &kReduce); }
