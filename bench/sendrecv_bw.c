/*
 * sendrecv_bw - a ring exchange: every rank sends count elements to rank+1 and receives
 * count elements from rank-1 (tag 0), grouped so neither side waits for the other.
 * mlcomm: GroupStart; Send; Recv; GroupEnd. MPI: MPI_Sendrecv. busbw = algbw.
 */
#include "harness.h"

static int next(const struct hb_call *c) { return (c->rank + 1) % c->nranks; }
static int prev(const struct hb_call *c) { return (c->rank - 1 + c->nranks) % c->nranks; }

static void counts(struct hb_call *c) {
  c->send_count = c->count;
  c->recv_count = c->count;
  c->check_count = c->count;
}

static mlcommResult_t run(const struct hb_call *c) {
  mlcommRequest_t req[2] = {MLCOMM_REQUEST_NULL, MLCOMM_REQUEST_NULL};
  mlcommResult_t rc = mlcommGroupStart();
  if (rc != mlcommSuccess) return rc;
  mlcommResult_t rs, rr;
  if (c->async) {
    rs = mlcommSendAsync(c->sendbuff, c->count, c->type, next(c), 0, c->comm, &req[0]);
    rr = mlcommRecvAsync(c->recvbuff, c->count, c->type, prev(c), 0, c->comm, &req[1]);
  } else {
    rs = mlcommSend(c->sendbuff, c->count, c->type, next(c), 0, c->comm);
    rr = mlcommRecv(c->recvbuff, c->count, c->type, prev(c), 0, c->comm, MLCOMM_STATUS_IGNORE);
  }
  rc = mlcommGroupEnd(); /* close the group even when recording a call failed */
  /* requests that were recorded are the harness's to wait, whatever failed beside them */
  if (c->async) {
    hb_keep(c, rs, req[0]);
    hb_keep(c, rr, req[1]);
  }
  if (rs != mlcommSuccess) return rs;
  if (rr != mlcommSuccess) return rr;
  return rc;
}

static int run_mpi(const struct hb_call *c) {
  int n = (int)c->count;
  if (!c->async)
    return MPI_Sendrecv(c->sendbuff, n, c->mpi_type, next(c), 0, c->recvbuff, n, c->mpi_type,
                        prev(c), 0, c->mpi_comm, MPI_STATUS_IGNORE);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Irecv(c->recvbuff, n, c->mpi_type, prev(c), 0, c->mpi_comm, &req);
  if (hb_keep_mpi(c, err, req) != MPI_SUCCESS) return err;
  req = MPI_REQUEST_NULL;
  err = MPI_Isend(c->sendbuff, n, c->mpi_type, next(c), 0, c->mpi_comm, &req);
  return hb_keep_mpi(c, err, req);
}

static int64_t expected(const struct hb_call *c, size_t i) { return hb_input(c, prev(c), i); }

static const struct hb_collective sendrecv_bw = {
    .bench = "sendrecv_bw",
    .call = "mlcommSend/mlcommRecv",
    .uses_op = 0,
    .uses_root = 0,
    .blocked = 0,
    .busbw_factor = hb_factor_one,
    .traffic = hb_traffic_sendrecv,
    .counts = counts,
    .in_place = NULL, /* a send and a receive have no in-place form: --in-place is refused */
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &sendrecv_bw); }
