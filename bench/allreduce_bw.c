/*
 * allreduce_bw - mlcommAllReduce vs MPI_Allreduce.
 * Every rank sends and receives count elements; busbw = algbw * 2(n-1)/n, the traffic
 * each rank's link carries in a bandwidth-optimal ring (nccl-tests' definition).
 */
#include "harness.h"

static void counts(hbCall *c) {
  c->sendCount = c->count;
  c->recvCount = c->count;
  c->checkCount = c->count;
}

static mlcommResult_t run(const hbCall *c) {
  if (!c->async)
    return mlcommAllReduce(c->sendbuff, c->recvbuff, c->count, c->type, c->op, c->comm);
  mlcommRequest_t req;
  return hbWait(mlcommAllReduceAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->op,
                                     c->comm, &req),
                &req);
}

static int runMpi(const hbCall *c) {
  if (!c->async)
    return MPI_Allreduce(c->sendbuff, c->recvbuff, (int)c->count, c->mpiType, c->mpiOp,
                         c->mpiComm);
  MPI_Request req;
  int err = MPI_Iallreduce(c->sendbuff, c->recvbuff, (int)c->count, c->mpiType, c->mpiOp,
                           c->mpiComm, &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
}

static int64_t expected(const hbCall *c, size_t i) { return hbReduced(c, i); }

static const hbCollective kAllReduce = {
    .bench = "allreduce_bw",
    .call = "mlcommAllReduce",
    .usesOp = 1,
    .usesRoot = 0,
    .blocked = 0,
    .busbwFactor = hbFactorAllReduce,
    .counts = counts,
    .run = run,
    .runMpi = runMpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hbMain(argc, argv, &kAllReduce); }
