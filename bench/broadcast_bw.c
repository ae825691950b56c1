/*
 * broadcast_bw - mlcommBroadcast vs MPI_Bcast.
 * Root's sendbuff lands in every rank's recvbuff (out of place, or with --in-place in
 * one buffer); busbw = algbw, since a pipelined broadcast moves the whole buffer over
 * each link once.
 */
#include "harness.h"

static void counts(struct hb_call *c) {
  /* only root's sendbuff is read; elsewhere (in place: the same memory as recvbuff) the
   * check's sentinel must stay until the broadcast overwrites it */
  c->send_count = c->rank == c->root ? c->count : 0;
  c->recv_count = c->count;
  c->check_count = c->count;
}

/* mlcomm.h: in place is sendbuff == recvbuff */
static void in_place(struct hb_call *c) { c->sendbuff = c->recvbuff; }

static mlcommResult_t run(const struct hb_call *c) {
  if (!c->async)
    return mlcommBroadcast(c->sendbuff, c->recvbuff, c->count, c->type, c->root, c->comm);
  mlcommRequest_t req = MLCOMM_REQUEST_NULL;
  mlcommResult_t rc = mlcommBroadcastAsync(c->sendbuff, c->recvbuff, c->count, c->type, c->root,
                                           c->comm, &req);
  return hb_keep(c, rc, req);
}

/* MPI_Bcast is in place. To move the same bytes from the same buffers as mlcomm, root
 * broadcasts straight from sendbuff (MPI only reads it there) and the others receive
 * into recvbuff; out of place, root's copy into its own recvbuff is left out, as MPI has
 * none. With --in-place the two are one buffer and both sides do the same work. */
static int run_mpi(const struct hb_call *c) {
  void *buf = c->rank == c->root ? c->sendbuff : c->recvbuff;
  if (!c->async) return MPI_Bcast(buf, (int)c->count, c->mpi_type, c->root, c->mpi_comm);
  MPI_Request req = MPI_REQUEST_NULL;
  int err = MPI_Ibcast(buf, (int)c->count, c->mpi_type, c->root, c->mpi_comm, &req);
  return hb_keep_mpi(c, err, req);
}

static int64_t expected(const struct hb_call *c, size_t i) { return hb_input(c, c->root, i); }

static const struct hb_collective broadcast_bw = {
    .bench = "broadcast_bw",
    .call = "mlcommBroadcast",
    .uses_op = 0,
    .uses_root = 1,
    .blocked = 0,
    .busbw_factor = hb_factor_one,
    .traffic = hb_traffic_broadcast,
    .counts = counts,
    .in_place = in_place,
    .run = run,
    .run_mpi = run_mpi,
    .expected = expected,
};

int main(int argc, char **argv) { return hb_main(argc, argv, &broadcast_bw); }
