/*
 * broadcast_bw - mlcommBroadcast vs MPI_Bcast.
 * Root's sendbuff lands in every rank's recvbuff (out of place); busbw = algbw, since a
 * pipelined broadcast moves the whole buffer over each link once.
 */
#include "harness.h"

static void counts(hbCall *c) {
  c->sendCount = c->count;
  c->recvCount = c->count;
  c->checkCount = c->count;
}

static mlcommResult_t run(const hbCall *c) {
  if (!c->async)
    return mlcommBroadcast(c->sendbuff, c->recvbuff, c->count, c->type, c->root, c->comm);
  mlcommRequest_t req;
  return hbWait(mlcommBroadcastAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->root,
                                     c->comm, &req),
                &req);
}

/* MPI_Bcast is in place. To move the same bytes from the same buffers as mlcomm, root
 * broadcasts straight from sendbuff (MPI only reads it there) and the others receive
 * into recvbuff; root's copy into its own recvbuff is left out, as MPI has none. */
static int runMpi(const hbCall *c) {
  void *buf = c->rank == c->root ? c->sendbuff : c->recvbuff;
  if (!c->async) return MPI_Bcast(buf, (int)c->count, c->mpiType, c->root, c->mpiComm);
  MPI_Request req;
  int err = MPI_Ibcast(buf, (int)c->count, c->mpiType, c->root, c->mpiComm, &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
}

static int64_t expected(const hbCall *c, size_t i) { return hbInput(c, c->root, i); }

static const hbCollective kBroadcast = {
    .bench = "broadcast_bw",
    .call = "mlcommBroadcast",
    .usesOp = 0,
    .usesRoot = 1,
    .blocked = 0,
    .busbwFactor = hbFactorOne,
    .counts = counts,
    .run = run,
    .runMpi = runMpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hbMain(argc, argv, &kBroadcast); }
