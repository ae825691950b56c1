/* The one table of transports: adding one touches this file, not the collectives. */
#include "backends/transport.h"

#include <string.h>

/* In priority order: auto selection asks the first that supports an op. */
const struct mlcomm_transport *const mlcomm_transports[] = {
#if MLCOMM_HAVE_NCCL
    &mlcomm_transport_nccl,
#endif
    &mlcomm_transport_shm,
    &mlcomm_transport_mpi,
};
const int mlcomm_ntransports = (int)(sizeof(mlcomm_transports) / sizeof(mlcomm_transports[0]));

static const struct mlcomm_transport *find_transport(int id) {
  for (int i = 0; i < mlcomm_ntransports; i++)
    if ((int)mlcomm_transports[i]->id == id) return mlcomm_transports[i];
  return NULL;
}

mlcommResult_t mlcomm_transports_init(struct mlcomm_comm *comm) {
  int forced = comm->config.transport;
  if (forced != mlcommTransportAuto && find_transport(forced) == NULL)
    return mlcomm_error(comm, mlcommUnsupported,
                        "transport '%s' was requested (config.transport / MLCOMM_TRANSPORT) "
                        "but is not part of this build of mlcomm %s; available: %sshm, mpi",
                        mlcomm_transport_name(forced), MLCOMM_VERSION_STRING,
                        MLCOMM_HAVE_NCCL ? "nccl, " : "");
  comm->ntransports = 0;
  for (int i = 0; i < mlcomm_ntransports; i++) {
    const struct mlcomm_transport *t = mlcomm_transports[i];
    if (forced != mlcommTransportAuto && (int)t->id != forced && t->id != mlcommTransportMpi)
      continue;
    const char *why = "no reason given";
    /* available() is collective and must give the same answer on every rank. */
    if (!t->available(comm, &why)) {
      if ((int)t->id == forced)
        return mlcomm_error(comm, mlcommUnsupported,
                            "transport '%s' was requested but cannot serve this communicator: %s",
                            t->name, why);
      MLCOMM_INFO("transport %s not available: %s", t->name, why);
      continue;
    }
    void *state = NULL;
    mlcommResult_t res = t->init(comm, &state);
    if (res != mlcommSuccess) {
      mlcomm_transports_fini(comm);
      return res;
    }
    comm->transports[comm->ntransports].t = t;
    comm->transports[comm->ntransports].state = state;
    comm->ntransports++;
  }
  return mlcommSuccess;
}

void mlcomm_transports_fini(struct mlcomm_comm *comm) {
  for (int i = comm->ntransports - 1; i >= 0; i--)
    comm->transports[i].t->fini(comm->transports[i].state);
  comm->ntransports = 0;
}

const struct mlcomm_tinst *mlcomm_transport_select(struct mlcomm_comm *comm,
                                                   const struct mlcomm_op *op,
                                                   const char *fn) {
  int forced = comm->config.transport;
  /* On a forced communicator, the forced transport carries the collectives, and MPI
   * what the forced one may lack: barriers (NCCL has none) and point-to-point, which
   * MPI alone carries with tag matching and probes, except on a communicator forced to
   * nccl, where send/recv go over NCCL (both sides must then use device buffers: each
   * rank chooses alone). */
  bool p2p = !mlcomm_op_is_collective(op->kind);
  for (int i = 0; i < comm->ntransports; i++) {
    const struct mlcomm_tinst *ti = &comm->transports[i];
    int id = (int)ti->t->id;
    bool allowed = p2p ? id == mlcommTransportMpi ||
                             (forced == mlcommTransportNccl && id == mlcommTransportNccl)
                       : forced == mlcommTransportAuto || id == forced ||
                             (op->kind == MLCOMM_OP_BARRIER && id == mlcommTransportMpi);
    if (allowed && ti->t->supports(ti->state, op)) return ti;
  }
  if (forced != mlcommTransportAuto)
    mlcomm_error(comm, mlcommUnsupported,
                 "%s: the communicator is forced to the %s transport (config.transport / "
                 "MLCOMM_TRANSPORT), which cannot carry this call: sendbuff is %s memory, "
                 "recvbuff is %s memory, datatype %d%s",
                 fn, mlcomm_transport_name(forced), mlcomm_mem_kind_name(op->send_mem),
                 mlcomm_mem_kind_name(op->recv_mem), (int)op->dtype,
                 forced == mlcommTransportNccl
                     ? " (nccl needs CUDA device buffers of its device; use transport auto to "
                       "mix host and device calls)"
                     : "");
  else
    mlcomm_error(comm, mlcommUnsupported,
                 "%s: no transport of this build can carry it (sendbuff %s, recvbuff %s "
                 "memory, datatype %d)",
                 fn, mlcomm_mem_kind_name(op->send_mem), mlcomm_mem_kind_name(op->recv_mem),
                 (int)op->dtype);
  return NULL;
}
