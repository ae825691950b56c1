/*
 * reduce_scatter_bw - mlcommReduceScatter vs MPI_Reduce_scatter_block.
 * As in nccl-tests, size and count are the total input (nranks blocks of count/nranks
 * elements); rank r receives reduced block r. busbw = algbw * (n-1)/n.
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  c->send_count = c->count;
  c->recv_count = c->count / (size_t)c->nranks;
  c->check_count = c->recv_count;
}

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommReduceScatter(c->sendbuff, c->recvbuff, c->recv_count, c->type, c->op,
                               c->comm);
  mlcommRequest_t req;
  return hb_wait(mlcommReduceScatterAsync(c->sendbuff, c->recvbuff, c->recv_count, c->type,
                                          c->op, c->comm, &req),
                 &req);
}

static int run_mpi(const struct hb_call *c) {
  int n = (int)c->recv_count;
  if (!c->async)
    return MPI_Reduce_scatter_block(c->sendbuff, c->recvbuff, n, c->mpi_type, c->mpi_op,
                                    c->mpi_comm);
  MPI_Request req;
  int err = MPI_Ireduce_scatter_block(c->sendbuff, c->recvbuff, n, c->mpi_type, c->mpi_op,
                                      c->mpi_comm, &req);
  return err != MPI_SUCCESS ? err : MPI_Wait(&req, MPI_STATUS_IGNORE);
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
    .counts = counts,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &reduce_scatter_bw); }
