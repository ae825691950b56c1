/*
 * The one table of transports, and selection from what each declares (caps, tune
 * rules). Adding a transport is a folder and a row here; nothing below names one.
 *
 * Under auto, a call goes to the highest-scoring transport whose caps carry its kind
 * and every buffer's memory kind, whose tune gives the call's size a score above 0,
 * and whose optional supports() agrees; on equal scores the earlier row wins. On a
 * communicator forced to one transport, that transport carries every kind it declares
 * (or the call fails, saying why), and what it lacks goes to the best of the others
 * (a barrier on nccl, point-to-point on shm, send/recv with host buffers on nccl).
 */
#include "backends/transport.h"

#include <stdlib.h>
#include <string.h>

const struct mlcomm_transport *const mlcomm_transports[] = {
#if MLCOMM_HAVE_NCCL
    &mlcomm_transport_nccl,
#endif
    &mlcomm_transport_hier,
    &mlcomm_transport_shm,
    &mlcomm_transport_mpi,
};
const int mlcomm_ntransports = (int)(sizeof(mlcomm_transports) / sizeof(mlcomm_transports[0]));

static const struct mlcomm_transport *find_transport(int id) {
  for (int i = 0; i < mlcomm_ntransports; i++)
    if ((int)mlcomm_transports[i]->id == id) return mlcomm_transports[i];
  return NULL;
}

static void built_list(char *buf, size_t len) {
  buf[0] = '\0';
  for (int i = 0; i < mlcomm_ntransports; i++)
    mlcomm_append(buf, len, "%s%s", i ? ", " : "", mlcomm_transports[i]->name);
}

/* Collective: the same answer on every rank (span is decided from the node count every
 * rank shares; available() hooks must agree themselves). */
static bool available(struct mlcomm_comm *comm, const struct mlcomm_transport *t,
                      const char **why) {
  if (t->caps.span == MLCOMM_SPAN_NODE && comm->node_ranks != comm->nranks) {
    *why = "the communicator's ranks are on more than one node";
    return false;
  }
  return t->available == NULL || t->available(comm, why);
}

static mlcommResult_t init_one(struct mlcomm_comm *comm, const struct mlcomm_transport *t) {
  struct mlcomm_tune *tune = calloc(1, sizeof *tune);
  if (tune == NULL) return mlcomm_error(comm, mlcommSystemError, "out of memory");
  mlcommResult_t res = mlcomm_tune_init(comm, t, tune);
  void *state = NULL;
  if (res == mlcommSuccess) res = t->init(comm, &state);
  if (res != mlcommSuccess) {
    mlcomm_tune_fini(tune);
    free(tune);
    return res;
  }
  comm->transports[comm->ntransports++] = (struct mlcomm_tinst){t, state, tune};
  return mlcommSuccess;
}

mlcommResult_t mlcomm_transports_init(struct mlcomm_comm *comm) {
  int forced = comm->config.transport;
  if (forced != mlcommTransportAuto && find_transport(forced) == NULL) {
    char built[128];
    built_list(built, sizeof built);
    return mlcomm_error(comm, mlcommUnsupported,
                        "transport '%s' was requested (config.transport / MLCOMM_TRANSPORT) "
                        "but is not part of this build of mlcomm %s; available: %s",
                        mlcomm_transport_name(forced), MLCOMM_VERSION_STRING, built);
  }
  comm->ntransports = 0;
  for (int i = 0; i < mlcomm_ntransports; i++) {
    const struct mlcomm_transport *t = mlcomm_transports[i];
    if (forced != mlcommTransportAuto && (int)t->id != forced && !t->caps.fallback) continue;
    const char *why = "no reason given";
    if (!available(comm, t, &why)) {
      if ((int)t->id == forced)
        return mlcomm_error(comm, mlcommUnsupported,
                            "transport '%s' was requested but cannot serve this communicator: %s",
                            t->name, why);
      MLCOMM_INFO("transport %s not available: %s", t->name, why);
      continue;
    }
    mlcommResult_t res = init_one(comm, t);
    if (res != mlcommSuccess) {
      mlcomm_transports_fini(comm);
      return res;
    }
  }
  return mlcommSuccess;
}

void mlcomm_transports_fini(struct mlcomm_comm *comm) {
  for (int i = comm->ntransports - 1; i >= 0; i--) {
    comm->transports[i].t->fini(comm->transports[i].state);
    if (comm->transports[i].tune) mlcomm_tune_fini(comm->transports[i].tune);
    free(comm->transports[i].tune);
  }
  comm->ntransports = 0;
}

static bool mems_ok(const struct mlcomm_transport *t, const struct mlcomm_op *op) {
  return (t->caps.mems & MLCOMM_MEM_BIT(op->send_mem)) &&
         (t->caps.mems & MLCOMM_MEM_BIT(op->recv_mem));
}

static bool declares(const struct mlcomm_transport *t, enum mlcomm_op_kind kind, int forced) {
  unsigned kinds = t->caps.kinds | ((int)t->id == forced ? t->caps.forced_kinds : 0);
  return (kinds & MLCOMM_KIND_BIT(kind)) != 0;
}

static bool carries(const struct mlcomm_tinst *ti, const struct mlcomm_op *op) {
  return mems_ok(ti->t, op) && (ti->t->supports == NULL || ti->t->supports(ti->state, op));
}

static const struct mlcomm_tinst *forced_instance(struct mlcomm_comm *comm, int forced) {
  for (int i = 0; i < comm->ntransports; i++)
    if ((int)comm->transports[i].t->id == forced) return &comm->transports[i];
  return NULL;
}

static void refuse(struct mlcomm_comm *comm, const struct mlcomm_op *op, const char *fn,
                   const struct mlcomm_tinst *forced) {
  if (forced)
    mlcomm_error(comm, mlcommUnsupported,
                 "%s: the communicator is forced to the %s transport (config.transport / "
                 "MLCOMM_TRANSPORT), which cannot carry this call: sendbuff is %s memory, "
                 "recvbuff is %s memory, datatype %s (%d); use transport auto to mix calls "
                 "that different transports carry",
                 fn, forced->t->name, mlcomm_mem_kind_name(op->send_mem),
                 mlcomm_mem_kind_name(op->recv_mem), mlcomm_type_name(op->dtype),
                 (int)op->dtype);
  else
    mlcomm_error(comm, mlcommUnsupported,
                 "%s: no transport of this communicator can carry it (sendbuff %s, recvbuff %s "
                 "memory, datatype %s; a tune string may have scored every one 0)",
                 fn, mlcomm_mem_kind_name(op->send_mem), mlcomm_mem_kind_name(op->recv_mem),
                 mlcomm_type_name(op->dtype));
}

const struct mlcomm_tinst *mlcomm_transport_select(struct mlcomm_comm *comm,
                                                   struct mlcomm_op *op, const char *fn) {
  int forced = comm->config.transport;
  size_t size = mlcomm_op_size(comm, op);
  int score, alg;
  const struct mlcomm_tinst *fi = forced != mlcommTransportAuto ? forced_instance(comm, forced) : NULL;
  if (fi && declares(fi->t, op->kind, forced)) {
    if (carries(fi, op)) {
      mlcomm_tune_lookup(fi->tune, op->kind, size, &score, &alg);
      op->alg = alg;
      return fi;
    }
    /* Each rank picks its point-to-point transport alone (the peers of a message must
     * agree by using the same kind of buffer), so one the forced transport refuses may
     * still travel over another; a collective must not. */
    if (mlcomm_op_is_collective(op->kind)) {
      refuse(comm, op, fn, fi);
      return NULL;
    }
  }
  const struct mlcomm_tinst *best = NULL;
  int best_score = 0, best_alg = -1;
  for (int i = 0; i < comm->ntransports; i++) {
    const struct mlcomm_tinst *ti = &comm->transports[i];
    if (ti == fi || !declares(ti->t, op->kind, mlcommTransportAuto)) continue;
    mlcomm_tune_lookup(ti->tune, op->kind, size, &score, &alg);
    if (score > best_score && carries(ti, op)) best = ti, best_score = score, best_alg = alg;
  }
  if (best == NULL) {
    refuse(comm, op, fn, fi);
    return NULL;
  }
  op->alg = best_alg;
  return best;
}

const struct mlcomm_tinst *mlcomm_transport_for_probe(struct mlcomm_comm *comm, const char *fn) {
  for (int i = 0; i < comm->ntransports; i++)
    if (comm->transports[i].t->caps.probe) return &comm->transports[i];
  mlcomm_error(comm, mlcommUnsupported, "%s: no transport of this communicator can probe", fn);
  return NULL;
}

const char *mlcomm_transport_alg_name(const struct mlcomm_transport *t, int alg) {
  if (t == NULL || t->algorithms == NULL || alg < 0) return "-";
  for (int a = 0; t->algorithms[a]; a++)
    if (a == alg) return t->algorithms[a];
  return "-";
}
