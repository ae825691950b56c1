/*
 * allgather_bw - mlcommAllGather vs MPI_Allgather.
 * As in nccl-tests, size and count are the gathered total (nranks blocks of count/nranks
 * elements); busbw = algbw * (n-1)/n, since each rank receives the n-1 blocks it lacks.
 * With --in-place each rank's input is already its own block of recvbuff.
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  c->send_count = c->count / (size_t)c->nranks;
  c->recv_count = c->count;
  c->check_count = c->count;
}

/* mlcomm.h: in place is sendbuff == recvbuff + rank*sendcount, the block this rank's input
 * lands in; MPI_IN_PLACE expects it there too */
static void in_place(struct hb_call *c) {
  c->sendbuff = (char *)c->recvbuff + (size_t)c->rank * c->send_count * hb_type_size(c->type);
}

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommAllGather(c->sendbuff, c->recvbuff, c->send_count, c->type, c->comm);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommResult_t rc = mlcommAllGatherAsync(c->sendbuff, c->recvbuff, c->send_count, c->type,
                                           c->comm, &req);
  return hb_keep(c, rc, req);
}

static int run_mpi(const struct hb_call *c) {
  int n = (int)c->send_count;
  /* with MPI_IN_PLACE the send count and type are ignored */
  const void *send = c->in_place ? MPI_IN_PLACE : c->sendbuff;
  if (!c->async)
    return MPI_Allgather(send, n, c->mpi_type, c->recvbuff, n, c->mpi_type, c->mpi_comm);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Iallgather(send, n, c->mpi_type, c->recvbuff, n, c->mpi_type, c->mpi_comm,
                           &req);
  return hb_keep_mpi(c, err, req);
}

/* element i of the result is element i % send_count of rank i / send_count's input */
static int64_t expected(const struct hb_call *c, size_t i) {
  return hb_input(c, (int)(i / c->send_count), i % c->send_count);
}

static const struct hb_collective allgather_bw = {
    .bench = "allgather_bw",
    .call = "mlcommAllGather",
    .uses_op = 0,
    .uses_root = 0,
    .blocked = 1,
    .busbw_factor = hb_factor_gather,
    .traffic = hb_traffic_allgather,
    .counts = counts,
    .in_place = in_place,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &allgather_bw); }
