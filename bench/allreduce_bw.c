/*
 * allreduce_bw - mlcommAllReduce vs MPI_Allreduce.
 * Every rank sends and receives count elements (with --in-place, in one buffer);
 * busbw = algbw * 2(n-1)/n, the traffic each rank's link carries in a bandwidth-optimal
 * ring (nccl-tests' definition).
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  c->send_count = c->count;
  c->recv_count = c->count;
  c->check_count = c->count;
}

/* mlcomm.h: in place is sendbuff == recvbuff */
static void in_place(struct hb_call *c) { c->sendbuff = c->recvbuff; }

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommAllReduce(c->sendbuff, c->recvbuff, c->count, c->type, c->op, c->comm);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommResult_t rc = mlcommAllReduceAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->op,
                                           c->comm, &req);
  return hb_keep(c, rc, req);
}

static int run_mpi(const struct hb_call *c) {
  const void *send = c->in_place ? MPI_IN_PLACE : c->sendbuff;
  if (!c->async)
    return MPI_Allreduce(send, c->recvbuff, (int)c->count, c->mpi_type, c->mpi_op,
                         c->mpi_comm);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Iallreduce(send, c->recvbuff, (int)c->count, c->mpi_type, c->mpi_op,
                           c->mpi_comm, &req);
  return hb_keep_mpi(c, err, req);
}

static int64_t expected(const struct hb_call *c, size_t i) { return hb_reduced(c, i); }

static const struct hb_collective allreduce_bw = {
    .bench = "allreduce_bw",
    .call = "mlcommAllReduce",
    .uses_op = 1,
    .uses_root = 0,
    .blocked = 0,
    .busbw_factor = hb_factor_allreduce,
    .traffic = hb_traffic_allreduce,
    .counts = counts,
    .in_place = in_place,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &allreduce_bw); }
