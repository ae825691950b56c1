/*
 * reduce_scatter_bw - mlcommReduceScatter vs MPI_Reduce_scatter_block.
 * As in nccl-tests, size and count are the total input (nranks blocks of count/nranks
 * elements); rank r receives reduced block r (with --in-place, in place of its input
 * block r). busbw = algbw * (n-1)/n.
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  c->send_count = c->count;
  c->recv_count = c->count / (size_t)c->nranks;
  c->check_count = c->recv_count;
}

/* mlcomm.h (as NCCL): in place is recvbuff == sendbuff + rank*recvcount */
static void in_place(struct hb_call *c) {
  c->recvbuff = (char *)c->sendbuff + (size_t)c->rank * c->recv_count * hb_type_size(c->type);
}

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommReduceScatter(c->sendbuff, c->recvbuff, c->recv_count, c->type, c->op,
                               c->comm);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommResult_t rc = mlcommReduceScatterAsync(c->sendbuff, c->recvbuff, c->recv_count, c->type,
                                               c->op, c->comm, &req);
  return hb_keep(c, rc, req);
}

/* MPI's in-place form reads the whole input from its recvbuf and, unlike NCCL's, leaves
 * the result at the start of it, not at block rank. The same bytes move either way, so
 * it serves for timing; the harness checks mlcomm's result before any MPI call. */
static int run_mpi(const struct hb_call *c) {
  int n = (int)c->recv_count;
  const void *send = c->in_place ? MPI_IN_PLACE : c->sendbuff;
  void *recv = c->in_place ? c->sendbuff : c->recvbuff;
  if (!c->async)
    return MPI_Reduce_scatter_block(send, recv, n, c->mpi_type, c->mpi_op, c->mpi_comm);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Ireduce_scatter_block(send, recv, n, c->mpi_type, c->mpi_op, c->mpi_comm,
                                      &req);
  return hb_keep_mpi(c, err, req);
}

/* element i of this rank's block is element rank*recv_count + i of the full reduction */
static int64_t expected(const struct hb_call *c, size_t i) {
  return hb_reduced(c, (size_t)c->rank * c->recv_count + i);
}

static const struct hb_collective reduce_scatter_bw = {
    .bench = "reduce_scatter_bw",
    .call = "mlcommReduceScatter",
    .uses_op = 1,
    .uses_root = 0,
    .blocked = 1,
    .busbw_factor = hb_factor_gather,
    .traffic = hb_traffic_reduce_scatter,
    .counts = counts,
    .in_place = in_place,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &reduce_scatter_bw); }
