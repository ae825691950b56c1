/*
 * reduce_bw - mlcommReduce vs MPI_Reduce.
 * The reduction of every rank's sendbuff lands in root's recvbuff only (with
 * --in-place, in the same buffer), so only root checks; busbw = algbw (nccl-tests: each
 * link carries the buffer once).
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  c->send_count = c->count;
  c->recv_count = c->count;
  c->check_count = c->rank == c->root ? c->count : 0; /* recvbuff is unused elsewhere */
}

/* mlcomm.h: in place is sendbuff == recvbuff */
static void in_place(struct hb_call *c) { c->sendbuff = c->recvbuff; }

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommReduce(c->sendbuff, c->recvbuff, c->count, c->type, c->op, c->root, c->comm);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommResult_t rc = mlcommReduceAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->op,
                                        c->root, c->comm, &req);
  return hb_keep(c, rc, req);
}

/* MPI's in-place reduce is MPI_IN_PLACE at root only; the other ranks pass their input
 * and no recvbuf, as MPI forbids aliased send and receive arguments. */
static int run_mpi(const struct hb_call *c) {
  const void *send = c->sendbuff;
  void *recv = c->recvbuff;
  if (c->in_place) {
    if (c->rank == c->root)
      send = MPI_IN_PLACE;
    else
      recv = NULL;
  }
  if (!c->async)
    return MPI_Reduce(send, recv, (int)c->count, c->mpi_type, c->mpi_op, c->root, c->mpi_comm);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Ireduce(send, recv, (int)c->count, c->mpi_type, c->mpi_op, c->root,
                        c->mpi_comm, &req);
  return hb_keep_mpi(c, err, req);
}

static int64_t expected(const struct hb_call *c, size_t i) { return hb_reduced(c, i); }

static const struct hb_collective reduce_bw = {
    .bench = "reduce_bw",
    .call = "mlcommReduce",
    .uses_op = 1,
    .uses_root = 1,
    .blocked = 0,
    .busbw_factor = hb_factor_one,
    .traffic = hb_traffic_reduce,
    .counts = counts,
    .in_place = in_place,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &reduce_bw); }
