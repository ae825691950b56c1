/*
 * Requests: one lifecycle for every call (start, progress, test/wait, release),
 * handles that cannot be confused with freed memory, and the wait loop with its
 * deadline. Blocking calls are start + wait through this same code.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/transport.h"
#include "collectives/reduce.h"
#include "core/internal.h"

/* ---- handles: a slot index plus a generation, so a stale handle never resolves */

struct slot {
  struct mlcomm_request *req;
  uint32_t gen;
  int32_t next_free;
};

static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static uint32_t nslots;
static int32_t free_head = -1;

uint64_t mlcomm_handle_register(struct mlcomm_request *req) {
  pthread_mutex_lock(&handle_lock);
  if (free_head < 0) {
    uint32_t grow = nslots ? nslots : 64;
    struct slot *bigger = realloc(slots, (nslots + grow) * sizeof *slots);
    if (bigger == NULL) {
      pthread_mutex_unlock(&handle_lock);
      return MLCOMM_REQUEST_NULL;
    }
    slots = bigger;
    for (uint32_t i = nslots; i < nslots + grow; i++) {
      slots[i] = (struct slot){.req = NULL, .gen = 1, .next_free = free_head};
      free_head = (int32_t)i;
    }
    nslots += grow;
  }
  int32_t idx = free_head;
  free_head = slots[idx].next_free;
  slots[idx].req = req;
  uint64_t handle = ((uint64_t)slots[idx].gen << 32) | (uint64_t)(idx + 1);
  pthread_mutex_unlock(&handle_lock);
  req->handle = handle;
  return handle;
}

struct mlcomm_request *mlcomm_handle_lookup(uint64_t handle) {
  uint64_t idx = (handle & 0xffffffffu) - 1;
  uint32_t gen = (uint32_t)(handle >> 32);
  struct mlcomm_request *req = NULL;
  pthread_mutex_lock(&handle_lock);
  if (handle != MLCOMM_REQUEST_NULL && idx < nslots && slots[idx].gen == gen) req = slots[idx].req;
  pthread_mutex_unlock(&handle_lock);
  return req;
}

static void handle_unregister(uint64_t handle) {
  uint64_t idx = (handle & 0xffffffffu) - 1;
  pthread_mutex_lock(&handle_lock);
  if (idx < nslots && slots[idx].req) {
    slots[idx].req = NULL;
    slots[idx].gen++; /* every copy of the old handle is now stale */
    slots[idx].next_free = free_head;
    free_head = (int32_t)idx;
  }
  pthread_mutex_unlock(&handle_lock);
}

/* ---- lifecycle */

struct mlcomm_request *mlcomm_request_new(struct mlcomm_comm *comm) {
  /* Reuse a released request: this runs once per call, and malloc + free cost more
   * than the rest of an 8-byte shm allreduce's bookkeeping (measured with callgrind). */
  struct mlcomm_request *req = comm->spare;
  if (req) {
    comm->spare = req->next;
    comm->nspare--;
  } else if ((req = malloc(sizeof *req)) == NULL) {
    return NULL;
  }
  memset(req, 0, sizeof *req);
  req->comm = comm;
  req->state = MLCOMM_REQ_DEFERRED;
  req->next = comm->live;
  if (comm->live) comm->live->prev = req;
  comm->live = req;
  comm->nlive++;
  return req;
}

void mlcomm_request_release(struct mlcomm_request *req) {
  struct mlcomm_comm *comm = req->comm;
  if (comm) {
    if (req->prev) req->prev->next = req->next;
    else comm->live = req->next;
    if (req->next) req->next->prev = req->prev;
    comm->nlive--;
    req->comm = NULL;
  }
  if (req->handle) handle_unregister(req->handle);
  req->handle = 0;
  /* Still on an open group's list: the outermost GroupEnd frees it. */
  if (req->in_group) {
    req->released = true;
    return;
  }
  if (comm && comm->nspare < 8) {
    req->next = comm->spare;
    comm->spare = req;
    comm->nspare++;
    return;
  }
  free(req);
}

void mlcomm_request_free_spares(struct mlcomm_comm *comm) {
  while (comm->spare) {
    struct mlcomm_request *next = comm->spare->next;
    free(comm->spare);
    comm->spare = next;
  }
  comm->nspare = 0;
}

/* MLCOMM_DEBUG=TRACE: one line per call, when it completes. */
static void trace(const struct mlcomm_request *req, const char *outcome) {
  const struct mlcomm_op *op = &req->op;
  char what[160] = "";
  if (op->kind != MLCOMM_OP_BARRIER)
    mlcomm_append(what, sizeof what, " %zu x %s", op->count, mlcomm_type_name(op->dtype));
  if (mlcomm_op_has_redop(op->kind)) mlcomm_append(what, sizeof what, " %s", mlcomm_op_name(op->redop));
  if (op->kind == MLCOMM_OP_BROADCAST || op->kind == MLCOMM_OP_REDUCE)
    mlcomm_append(what, sizeof what, " root %d", op->root);
  if (!mlcomm_op_is_collective(op->kind))
    mlcomm_append(what, sizeof what, " %s %d tag %d", op->kind == MLCOMM_OP_SEND ? "to" : "from",
                  op->peer, op->tag);
  if (op->in_place) mlcomm_append(what, sizeof what, " in place");
  size_t bytes = req->comm ? mlcomm_op_size(req->comm, op) : op->status.bytes;
  const struct mlcomm_transport *t = req->ti ? req->ti->t : NULL;
  MLCOMM_TRACE("%s seq %llu:%s%s %zu bytes, %s/%s, %.3f ms, %s", mlcomm_op_kind_name(op->kind),
               (unsigned long long)op->seq, what, what[0] ? "," : "", bytes, t ? t->name : "none",
               mlcomm_transport_alg_name(t, op->alg), mlcomm_now_ms() - req->t_start, outcome);
}

static void finish(struct mlcomm_request *req, mlcommResult_t res) {
  if (req->ti) req->ti->t->release(req->ti->state, &req->op, false);
  req->state = MLCOMM_REQ_DONE;
  req->result = res;
  if (res != mlcommSuccess && req->comm) mlcomm_note_failure(req->comm, res);
  if (mlcomm_debug_level() >= MLCOMM_LOG_TRACE) trace(req, mlcommGetErrorString(res));
}

void mlcomm_request_complete_now(struct mlcomm_request *req) {
  req->t_start = mlcomm_now_ms();
  finish(req, mlcommSuccess);
}

void mlcomm_request_group_enter(struct mlcomm_request *req) { req->in_group = true; }

bool mlcomm_request_group_starts(const struct mlcomm_request *req) {
  return !req->released && req->comm != NULL && req->state == MLCOMM_REQ_DEFERRED;
}

bool mlcomm_request_group_leave(struct mlcomm_request *req) {
  req->in_group = false;
  if (!req->released) return true;
  free(req);
  return false;
}

void mlcomm_request_abandon_all(struct mlcomm_comm *comm) {
  while (comm->live) {
    struct mlcomm_request *req = comm->live;
    comm->live = req->next;
    /* MPI may still own the buffers of a collective in flight: the transport abandons
     * (not frees) what it must. */
    if (req->state == MLCOMM_REQ_ACTIVE && req->ti) req->ti->t->release(req->ti->state, &req->op, true);
    if (req->state != MLCOMM_REQ_DONE && mlcomm_debug_level() >= MLCOMM_LOG_TRACE)
      trace(req, "aborted");
    req->comm = NULL;
    req->ti = NULL; /* its transport instance goes with the comm */
    req->prev = req->next = NULL;
    if (req->state != MLCOMM_REQ_DONE) {
      req->state = MLCOMM_REQ_DONE;
      req->result = mlcommRemoteError;
    }
    /* Handles the caller holds stay resolvable and report the abort. */
    if (!req->user_visible || req->orphan) mlcomm_request_release(req);
  }
  comm->nlive = 0;
}

mlcommResult_t mlcomm_subcomm_start(struct mlcomm_comm *sub, const struct mlcomm_op *op,
                                    struct mlcomm_request **out) {
  *out = NULL;
  struct mlcomm_request *req = mlcomm_request_new(sub);
  if (req == NULL) return mlcomm_error(sub, mlcommSystemError, "out of memory for a request");
  req->op = *op;
  struct mlcomm_op *o = &req->op;
  o->seq = mlcomm_op_is_collective(o->kind) ? sub->coll_seq++ : sub->p2p_seq++;
  if (mlcomm_op_is_collective(o->kind)) sub->seq_kinds[o->seq % MLCOMM_SEQ_RING] = (uint8_t)o->kind;
  size_t send_len, recv_len; /* as the funnel marks it: only where both buffers are used */
  mlcomm_op_extents(sub, o, &send_len, &recv_len);
  o->in_place = send_len && recv_len && mlcomm_op_in_place(sub, o);
  o->alg = -1;
  o->tstate = NULL;
  req->ti = mlcomm_transport_select(sub, o, mlcomm_op_kind_name(o->kind));
  if (req->ti == NULL) {
    mlcomm_request_release(req);
    return mlcommUnsupported;
  }
  mlcommResult_t res = mlcomm_request_start(req);
  if (res != mlcommSuccess) {
    mlcomm_request_release(req);
    return res;
  }
  *out = req;
  return mlcommSuccess;
}

mlcommResult_t mlcomm_subcomm_test(struct mlcomm_request *req, bool *done) {
  *done = mlcomm_request_progress(req);
  if (!*done) return mlcommSuccess;
  mlcommResult_t res = req->result;
  mlcomm_request_release(req);
  return res;
}

mlcommResult_t mlcomm_request_start(struct mlcomm_request *req) {
  req->state = MLCOMM_REQ_ACTIVE;
  if (mlcomm_debug_level() >= MLCOMM_LOG_TRACE) req->t_start = mlcomm_now_ms();
  mlcommResult_t res = req->ti->t->start(req->ti->state, &req->op);
  if (res != mlcommSuccess) finish(req, res);
  return res;
}

bool mlcomm_request_progress(struct mlcomm_request *req) {
  if (req->state == MLCOMM_REQ_DONE) return true;
  if (req->state != MLCOMM_REQ_ACTIVE) return false;
  bool done = false;
  mlcommResult_t res = req->ti->t->progress(req->ti->state, &req->op, &done);
  if (res != mlcommSuccess || done) finish(req, res);
  return req->state == MLCOMM_REQ_DONE;
}

static void progress_comm(struct mlcomm_comm *comm, void *arg) {
  (void)arg;
  struct mlcomm_request *req = comm->live;
  while (req) {
    struct mlcomm_request *next = req->next;
    if (mlcomm_request_progress(req) && req->orphan) mlcomm_request_release(req);
    req = next;
  }
}

void mlcomm_progress_all(void) { mlcomm_comm_foreach(progress_comm, NULL); }

double mlcomm_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void mlcomm_backoff(double waited_ms, double spin_ms) {
  /* Spinning for 50 us keeps latency low; then yielding lets an oversubscribed peer
   * (4 ranks on 2 cores) run; sleeping stops a rank that waits on a straggler for
   * seconds from burning a core. Measured: yielding from the first poll when the node
   * is oversubscribed made a 4-rank 8-byte allreduce on 2 cores 2x slower, because
   * Open MPI already yields inside MPI_Test there. */
  if (waited_ms < spin_ms) return;
  if (waited_ms < 1000.0) {
    sched_yield();
    return;
  }
  struct timespec ts = {0, 100 * 1000};
  nanosleep(&ts, NULL);
}

static void serve_comm(struct mlcomm_comm *comm, void *arg) {
  (void)arg;
  mlcomm_diag_serve(comm);
}

static void fill_status(const struct mlcomm_request *req, mlcommStatus_t *status) {
  if (status) *status = req->op.status;
}

/* The request's final result; releases it. */
static mlcommResult_t complete(struct mlcomm_request *req, mlcommStatus_t *status) {
  mlcommResult_t res = req->result;
  if (req->comm == NULL && res != mlcommSuccess)
    mlcomm_error(NULL, res, "%s (seq %llu): its communicator was aborted with mlcommCommAbort",
                 mlcomm_op_kind_name(req->op.kind), (unsigned long long)req->op.seq);
  if (res == mlcommSuccess) fill_status(req, status);
  mlcomm_request_release(req);
  return res;
}

static mlcommResult_t timed_out(struct mlcomm_request *req, double waited_ms, bool owned) {
  struct mlcomm_comm *comm = req->comm;
  const struct mlcomm_op *op = &req->op;
  char report[MLCOMM_ERRMSG_LEN / 2] = "";
  bool collective = mlcomm_op_is_collective(op->kind);
  /* A transport that sees its peers' progress (shared-memory flags) says who is missing
   * itself; otherwise the peers are asked over MPI. */
  if (collective && req->ti->t->describe)
    req->ti->t->describe(req->ti->state, op, report, sizeof report);
  else if (collective)
    mlcomm_diag_report(comm, op, report, sizeof report);
  else
    snprintf(report, sizeof report, "peer %d (tag %d) has not matched it", op->peer, op->tag);
  mlcomm_error(comm, mlcommTimeout,
               "%s (seq %llu, %zu x %s) timed out after %.0f ms on rank %d of %d: %s. Raise "
               "MLCOMM_TIMEOUT_MS if the wait was legitimate; otherwise abort the communicator",
               mlcomm_op_kind_name(op->kind), (unsigned long long)op->seq, op->count,
               mlcomm_type_name(op->dtype), waited_ms, comm->rank, comm->nranks, report);
  mlcomm_note_failure(comm, mlcommTimeout);
  if (owned) {
    const struct mlcomm_transport *t = req->ti->t;
    if (t->withdraw && t->withdraw(req->ti->state, &req->op)) {
      /* Nothing reached MPI (an unmatched receive): drop it, the comm stays usable. */
      finish(req, mlcommTimeout);
      mlcomm_request_release(req);
      return mlcommTimeout;
    }
    /* The caller's call returns, but MPI may still use its buffers: the request lives
     * on as an orphan, and the communicator refuses new work until it is aborted. */
    req->orphan = true;
    comm->failed = mlcommTimeout;
  }
  return mlcommTimeout;
}

mlcommResult_t mlcomm_request_wait(struct mlcomm_request *req, mlcommStatus_t *status,
                                   bool owned) {
  struct mlcomm_comm *comm = req->comm;
  if (comm == NULL) return complete(req, status);
  /* A small call often completes in its start or first poll: no clock read for it
   * (two reads were a tenth of an 8-byte shm allreduce). */
  comm->waiting = true;
  bool done = req->state == MLCOMM_REQ_ACTIVE && mlcomm_request_progress(req);
  mlcommResult_t res = done ? complete(req, status)
                            : mlcomm_request_wait_since(req, status, owned, mlcomm_now_ms());
  comm->waiting = false;
  return res;
}

mlcommResult_t mlcomm_request_wait_since(struct mlcomm_request *req, mlcommStatus_t *status,
                                         bool owned, double since_ms) {
  struct mlcomm_comm *comm = req->comm;
  if (comm == NULL || req->state == MLCOMM_REQ_DONE) return complete(req, status);
  if (req->state == MLCOMM_REQ_DEFERRED)
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "%s was called inside mlcommGroupStart/End and starts at the "
                        "outermost mlcommGroupEnd; wait for it after that",
                        mlcomm_op_kind_name(req->op.kind));
  double t0 = since_ms, next_serve = mlcomm_now_ms() + 10.0, moved = t0;
  uint64_t ticks = comm->progress_ticks;
  int timeout = comm->config.timeoutMs;
  for (uint64_t it = 0;; it++) {
    if (mlcomm_request_progress(req)) return complete(req, status);
    if ((it & 15) == 15) mlcomm_progress_all();
    double now = mlcomm_now_ms();
    if (now >= next_serve) { /* a peer that timed out may be asking where we are */
      mlcomm_comm_foreach(serve_comm, NULL);
      next_serve = now + 1.0;
    }
    if (mlcomm_watch(comm, &req->op, now - t0) && req->state == MLCOMM_REQ_DONE)
      continue; /* a peer died: the request failed, and completes above */
    if (timeout > 0 && now - t0 >= timeout) return timed_out(req, now - t0, owned);
    /* The backoff counts from the last time the call advanced, not from its start: a
     * 64 MiB allreduce that waits on its peer slice after slice must not yield the CPU
     * (under load that hands it to another process for a whole time slice). */
    if (comm->progress_ticks != ticks) ticks = comm->progress_ticks, moved = now;
    mlcomm_backoff(now - moved, comm->spin_ms);
  }
}

/* ---- public request calls */

static mlcommResult_t lookup(mlcommRequest_t *request, const char *fn,
                             struct mlcomm_request **out) {
  if (request == NULL) return mlcomm_error(NULL, mlcommInvalidArgument, "%s: request is NULL", fn);
  if (*request == MLCOMM_REQUEST_NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "%s: request is MLCOMM_REQUEST_NULL (already completed, or never started)",
                        fn);
  *out = mlcomm_handle_lookup(*request);
  if (*out == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "%s: request 0x%llx is not a live request (it completed already and was "
                        "released, or was never returned by mlcomm)",
                        fn, (unsigned long long)*request);
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommWait(mlcommRequest_t *request, mlcommStatus_t *status) {
  struct mlcomm_request *req;
  MLCOMM_CHECK(lookup(request, "mlcommWait", &req));
  bool deferred = req->state == MLCOMM_REQ_DEFERRED && req->comm != NULL;
  mlcommResult_t res = mlcomm_request_wait(req, status, false);
  /* Released unless it timed out or belongs to a group not yet ended. */
  if (res != mlcommTimeout && !deferred) *request = MLCOMM_REQUEST_NULL;
  return res;
}

MLCOMM_API mlcommResult_t mlcommTest(mlcommRequest_t *request, int *done, mlcommStatus_t *status) {
  struct mlcomm_request *req;
  MLCOMM_CHECK(lookup(request, "mlcommTest", &req));
  if (done == NULL) return mlcomm_error(req->comm, mlcommInvalidArgument, "mlcommTest: done is NULL");
  *done = 0;
  if (req->state == MLCOMM_REQ_DEFERRED && req->comm)
    return mlcomm_error(req->comm, mlcommInvalidArgument,
                        "mlcommTest: %s was called inside mlcommGroupStart/End and starts at "
                        "the outermost mlcommGroupEnd; test it after that",
                        mlcomm_op_kind_name(req->op.kind));
  if (req->comm) {
    mlcomm_progress_all();
    mlcomm_diag_serve(req->comm);
    /* Polling is waiting too: count from the request's first test. */
    double now = mlcomm_now_ms();
    if (req->t_first_test == 0) req->t_first_test = now;
    if (req->state == MLCOMM_REQ_ACTIVE) mlcomm_watch(req->comm, &req->op, now - req->t_first_test);
  }
  if (!mlcomm_request_progress(req) && req->comm != NULL) return mlcommSuccess;
  *done = 1;
  *request = MLCOMM_REQUEST_NULL;
  return complete(req, status);
}

MLCOMM_API mlcommResult_t mlcommWaitAll(int count, mlcommRequest_t *requests,
                                        mlcommStatus_t *statuses) {
  static const char fn[] = "mlcommWaitAll";
  if (count < 0) return mlcomm_error(NULL, mlcommInvalidArgument, "%s: count is %d, expected >= 0", fn, count);
  if (count > 0 && requests == NULL)
    return mlcomm_error(NULL, mlcommInvalidArgument, "%s: requests is NULL with count %d", fn, count);
  /* Refuse a bad handle before waiting on anything, so nothing is half done. */
  for (int i = 0; i < count; i++)
    if (requests[i] != MLCOMM_REQUEST_NULL && mlcomm_handle_lookup(requests[i]) == NULL)
      return mlcomm_error(NULL, mlcommInvalidArgument,
                          "%s: requests[%d] (0x%llx) is not a live request", fn, i,
                          (unsigned long long)requests[i]);
  mlcommResult_t first = mlcommSuccess;
  for (int i = 0; i < count; i++) {
    if (requests[i] == MLCOMM_REQUEST_NULL) continue;
    mlcommResult_t res = mlcommWait(&requests[i], statuses ? &statuses[i] : NULL);
    if (res != mlcommSuccess && first == mlcommSuccess) first = res;
    if (res == mlcommTimeout) break; /* the rest stay valid for the caller */
  }
  return first;
}
