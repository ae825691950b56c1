/*
 * Arrival, descriptors and the watch on peers: who has reached op s, whether they
 * called the same thing, whether a peer aborted or died, and what to say on timeout.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backends/shm/shm.h"
#include "collectives/reduce.h"

/* How often a blocked rank checks that its peers' processes are alive. */
MLCOMM_PARAM(ShmLivenessMs, "MLCOMM_SHM_LIVENESS_MS", 200, 10, 60000);

bool shm_all_reached(const struct shm_state *st, size_t off, uint64_t v) {
  for (int r = 0; r < st->n; r++)
    if (shm_load((const struct shm_counter *)((const char *)st->ctls[r] + off)) < v) return false;
  return true;
}

bool shm_small_slot_free(struct shm_state *st, const struct shm_op *o) {
  /* Slot reuse distance: 2 inline (the arrive line's halves), SHM_SMALL_SLOTS else.
   * Every rank arrived at o - k + 1 only after finishing o - k: if this rank saw that,
   * the check costs no cache-line transfer (the usual case in a loop of allreduces). */
  uint64_t k = o->inl == SHM_INL_ARRIVE ? 2 : SHM_SMALL_SLOTS;
  if (o->sseq <= k || st->all_arrived + k - 1 >= o->sseq || st->all_done + k >= o->sseq)
    return true;
  /* Read every rank's done counter only now, and remember the least one. */
  uint64_t least = UINT64_MAX;
  for (int r = 0; r < st->n; r++) {
    uint64_t d = shm_load(&st->ctls[r]->done);
    if (d < least) least = d;
  }
  st->all_done = least;
  return least + k >= o->sseq;
}

bool shm_slice_slot_free(const struct shm_state *st, uint64_t e) {
  return e < st->lay.slots || SHM_ALL(st, consumed, e - st->lay.slots + 1);
}

mlcommResult_t shm_fail(struct shm_state *st, mlcommResult_t res, const char *fmt, ...) {
  if (st->failed == mlcommSuccess) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->why, sizeof st->why, fmt, ap);
    va_end(ap);
    st->failed = res;
  }
  return st->failed;
}

static bool rooted(int kind) { return kind == MLCOMM_OP_BROADCAST || kind == MLCOMM_OP_REDUCE; }
static bool reducing(int kind) {
  return kind == MLCOMM_OP_ALLREDUCE || kind == MLCOMM_OP_REDUCE ||
         kind == MLCOMM_OP_REDUCESCATTER;
}

/* Signature bits, low to high: sseq 32 | root 16 | count 5 | redop 3 | dtype 4 | kind 3 |
 * valid 1. Fields a kind ignores are zero, as check_desc ignores them. */
uint64_t shm_inline_sig(const struct mlcomm_op *op, uint64_t sseq, size_t payload) {
  bool barrier = op->kind == MLCOMM_OP_BARRIER;
  uint64_t root = rooted(op->kind) ? (uint64_t)op->root : 0;
  uint64_t count = barrier ? 0 : op->count, dtype = barrier ? 0 : (uint64_t)op->dtype;
  uint64_t redop = reducing(op->kind) ? (uint64_t)op->redop : 0;
  if (payload > SHM_INLINE_BYTES || root > 0xffff || count > 31) return 0;
  return (sseq & 0xffffffffu) | root << 32 | count << 48 | redop << 53 | dtype << 56 |
         (uint64_t)op->kind << 60 | 1ull << 63;
}


static void publish(struct shm_state *st, struct shm_op *o) {
  const struct mlcomm_op *op = o->op;
  struct shm_ctl *me = st->ctls[st->rank];
  if (o->sig) {
    /* Same cache line as the payload (and the arrival, or the slot readers poll):
     * peers read the call with the data. Released after the payload. */
    atomic_store_explicit((_Atomic uint64_t *)shm_sig_at(st, o->inl, st->rank, o->sseq), o->sig,
                          memory_order_release);
  } else {
    me->desc[o->sseq % SHM_DESC_RING] = (struct shm_desc){
        .sseq = o->sseq, .seq = op->seq, .count = op->count, .kind = (int32_t)op->kind,
        .dtype = (int32_t)op->dtype, .redop = (int32_t)op->redop, .root = op->root,
        .send_off = o->send_off, .recv_off = o->recv_off,
        .send_addr = (uint64_t)(uintptr_t)op->sendbuf,
        .recv_addr = (uint64_t)(uintptr_t)op->recvbuf};
  }
  *shm_arrive_seq(st, st->rank) = op->seq;
  shm_store(&me->arrive, o->sseq);
  o->published = true;
}

static bool sig_is_for(uint64_t sig, uint64_t sseq) {
  return (sig >> 63) && (sig & 0xffffffffu) == (sseq & 0xffffffffu);
}

static uint64_t load_sig(const uint64_t *at) {
  return atomic_load_explicit((const _Atomic uint64_t *)at, memory_order_acquire);
}

/* Rank j's signature of op sseq, looked for first where a call of the kind `first`
 * (enum shm_inl) keeps it, then in the other place; 0 when j went inline in neither (it
 * wrote a descriptor). *d gets the call the signature describes. */
static uint64_t peer_sig(const struct shm_state *st, int j, uint64_t sseq, int first,
                         struct shm_desc *d) {
  for (int k = 0; k < 2; k++) {
    int inl = k == 0 ? first : SHM_INL_ARRIVE + SHM_INL_SLOT - first;
    uint64_t sig = load_sig(shm_sig_at(st, inl, j, sseq));
    if (!sig_is_for(sig, sseq)) continue;
    *d = (struct shm_desc){.sseq = sseq, .root = (int32_t)(sig >> 32 & 0xffff),
                           .count = sig >> 48 & 31, .redop = (int32_t)(sig >> 53 & 7),
                           .dtype = (int32_t)(sig >> 56 & 15), .kind = (int32_t)(sig >> 60 & 7)};
    return sig;
  }
  return 0;
}

static void describe_call(char *buf, size_t len, int kind, uint64_t count, int dtype, int redop,
                          int root) {
  int k = snprintf(buf, len, "%s(%llu x %s", mlcomm_op_kind_name((enum mlcomm_op_kind)kind),
                   (unsigned long long)count, mlcomm_type_name((mlcommDataType_t)dtype));
  if (reducing(kind)) k += snprintf(buf + k, len - (size_t)k, ", %s", mlcomm_op_name((mlcommRedOp_t)redop));
  if (rooted(kind)) k += snprintf(buf + k, len - (size_t)k, ", root %d", root);
  snprintf(buf + k, len - (size_t)k, ")");
}

/* Does rank j's call at this point match ours? */
static bool check_desc(struct shm_state *st, const struct shm_op *o, int j) {
  const struct mlcomm_op *op = o->op;
  struct shm_desc inl;
  const struct shm_desc *d = shm_peer_desc(st, j, o->sseq);
  /* j went inline at this op if either place holds a signature for it; the place our
   * own call uses first (the other costs a cache miss, and is needed only when j made
   * another call). */
  uint64_t jsig =
      peer_sig(st, j, o->sseq, o->inl == SHM_INL_SLOT ? SHM_INL_SLOT : SHM_INL_ARRIVE, &inl);
  if (jsig) d = &inl;
  bool same;
  if (o->sig || jsig)
    same = o->sig == jsig; /* both inline, or a mismatch */
  else
    same = d->sseq == o->sseq && d->kind == (int32_t)op->kind && (op->kind == MLCOMM_OP_BARRIER ||
           (d->count == op->count && d->dtype == (int32_t)op->dtype)) &&
           (!reducing(op->kind) || d->redop == (int32_t)op->redop) &&
           (!rooted(op->kind) || d->root == op->root);
  if (same) return true;
  char theirs[160], ours[160];
  describe_call(theirs, sizeof theirs, d->kind, d->count, d->dtype, d->redop, d->root);
  describe_call(ours, sizeof ours, (int)op->kind, op->count, (int)op->dtype, (int)op->redop, op->root);
  shm_fail(st, mlcommInvalidArgument,
           "collective seq %llu on the shared-memory transport: rank %d called %s where rank %d "
           "called %s; every rank must make the same collective calls in the same order with "
           "the same count, type, op and root. The communicator is unusable now: abort it",
           (unsigned long long)op->seq, j, theirs, st->rank, ours);
  return false;
}

enum shm_step shm_publish(struct shm_state *st, struct shm_op *o) {
  if (o->published) return SHM_ADVANCED;
  if (!o->sig && o->sseq > SHM_DESC_RING && st->all_arrived + SHM_DESC_RING - 1 < o->sseq &&
      !SHM_ALL(st, done, o->sseq - SHM_DESC_RING))
    return SHM_BLOCKED;
  publish(st, o);
  return SHM_ADVANCED;
}

/* Has rank r arrived at o? For a slot-inline call, its signature in the slot says so
 * without the arrive line; a rank that made another call shows in its arrive line. */
static bool arrived_one(const struct shm_state *st, const struct shm_op *o, int r) {
  if (o->inl == SHM_INL_SLOT && sig_is_for(load_sig(shm_sig_at(st, o->inl, r, o->sseq)), o->sseq))
    return true;
  return shm_load(&st->ctls[r]->arrive) >= o->sseq;
}

static bool arrived(const struct shm_state *st, const struct shm_op *o, int who) {
  if (who >= 0) return arrived_one(st, o, who);
  for (int r = 0; r < st->n; r++)
    if (!arrived_one(st, o, r)) return false;
  return true;
}

/* A one-shot call inside a blocking wait polls its peers' lines in a tight loop for a
 * few microseconds before going back through the request layer, whose round trip
 * (progress, clock, timeout and liveness checks) is slower than the peer's arrival
 * often is. Not when oversubscribed: the peer may need this CPU. */
#define SHM_SPIN_POLLS 4096

enum shm_step shm_await(struct shm_state *st, struct shm_op *o, int who) {
  if (o->checked) return SHM_ADVANCED;
  if (!arrived(st, o, who)) {
    if (!o->small || !st->comm->waiting || st->oversubscribed) return SHM_BLOCKED;
    for (int k = 0; !arrived(st, o, who); k++)
      if (k == SHM_SPIN_POLLS) return SHM_BLOCKED;
  }
  for (int j = 0; j < st->n; j++)
    if (j != st->rank && (who < 0 || j == who) && !check_desc(st, o, j)) return SHM_FAILED;
  o->checked = true;
  if (who < 0 && o->sseq > st->all_arrived) st->all_arrived = o->sseq;
  return SHM_ADVANCED;
}

static bool alive(const struct shm_ctl *c) {
  if (kill(c->pid, 0) != 0 && errno == ESRCH) return false;
  return mlcomm_proc_start_time(c->pid) == (int64_t)c->start_time;
}

/* Fails st naming the first dead peer; false when every peer is alive. */
static bool find_dead(struct shm_state *st) {
  for (int r = 0; r < st->n; r++) {
    if (r == st->rank || alive(st->ctls[r])) continue;
    const struct mlcomm_op *op = st->head ? st->head->op : NULL;
    shm_fail(st, mlcommRemoteError,
             "rank %d (pid %d) died while this rank (%d) waited for it in %s (seq %llu) on the "
             "shared-memory transport; the communicator is unusable: abort it",
             r, (int)st->ctls[r]->pid, st->rank, op ? mlcomm_op_kind_name(op->kind) : "a collective",
             op ? (unsigned long long)op->seq : 0ull);
    return true;
  }
  return false;
}

void shm_check_peers(struct shm_state *st) {
  int32_t rby = atomic_load_explicit(&st->hdr->revoked_by, memory_order_acquire);
  if (rby > 0 && rby - 1 != st->rank) {
    if (st->liveness && find_dead(st)) return; /* as for an abort: say the death first */
    int32_t f = atomic_load_explicit(&st->hdr->revoke_failed, memory_order_acquire);
    if (f > 0)
      shm_fail(st, mlcommRemoteError,
               "rank %d failed first; rank %d revoked the communicator (mlcommCommRevoke) while "
               "this rank (%d) waited on the shared-memory transport",
               f - 1, rby - 1, st->rank);
    else
      shm_fail(st, mlcommRemoteError,
               "rank %d revoked the communicator (mlcommCommRevoke) while this rank (%d) waited "
               "on the shared-memory transport",
               rby - 1, st->rank);
    return;
  }
  int32_t by = atomic_load_explicit(&st->hdr->aborted_by, memory_order_acquire);
  if (by > 0 && by - 1 != st->rank) {
    /* A peer that aborted has usually seen another one die: say so first, as the peer
     * that noticed the death would have. */
    if (st->liveness && find_dead(st)) return;
    shm_fail(st, mlcommRemoteError,
             "rank %d aborted the communicator (mlcommCommAbort) while this rank (%d) waited "
             "on the shared-memory transport; abort it here too",
             by - 1, st->rank);
    return;
  }
  if ((++st->polls & 63) != 0) return; /* the clock costs more than the flag */
  double now = mlcomm_now_ms();
  if (st->blocked_since == 0) st->blocked_since = now;
  /* Reading /proc is for real waits, not for a peer a few microseconds behind. */
  if (now - st->blocked_since < 10.0) return;
  if (!st->liveness || now - st->last_check < st->liveness_ms) return;
  st->last_check = now;
  find_dead(st);
}


void shm_describe(void *state, const struct mlcomm_op *op, char *buf, size_t len) {
  struct shm_state *st = state;
  const struct shm_op *o = st->head ? st->head : op->tstate;
  buf[0] = '\0';
  if (o == NULL) {
    snprintf(buf, len, "the shared-memory transport holds no state for it");
    return;
  }
  if (o->user_op != op)
    mlcomm_append(buf, len, "it is queued behind %s (seq %llu), still running; ",
           mlcomm_op_kind_name(o->op->kind), (unsigned long long)o->op->seq);
  mlcomm_append(buf, len, "ranks that have not arrived:");
  int missing = 0;
  for (int r = 0; r < st->n; r++) {
    uint64_t a = shm_load(&st->ctls[r]->arrive);
    if (a >= o->sseq) continue;
    mlcomm_append(buf, len, "%s %d", missing++ ? "," : "", r);
    if (a == 0) {
      mlcomm_append(buf, len, " (no collective on this communicator yet)");
      continue;
    }
    struct shm_desc inl;
    const struct shm_desc *d =
        peer_sig(st, r, a, SHM_INL_ARRIVE, &inl) ? &inl : shm_peer_desc(st, r, a);
    bool fin = shm_load(&st->ctls[r]->done) >= a;
    mlcomm_append(buf, len, " (its last collective here: %s seq %llu, %s)",
           mlcomm_op_kind_name((enum mlcomm_op_kind)d->kind),
           (unsigned long long)*shm_arrive_seq(st, r),
           fin ? "finished" : "still in it");
  }
  if (missing == 0)
    mlcomm_append(buf, len, " none; every rank arrived, and the slices stopped at posted/reduced/consumed"
                     " %llu/%llu/%llu of epochs up to %llu here",
           (unsigned long long)o->next_post, (unsigned long long)o->next_reduce,
           (unsigned long long)o->next_consume, (unsigned long long)o->nslices);
  mlcomm_append(buf, len, "; arrived:");
  for (int r = 0; r < st->n; r++)
    if (shm_load(&st->ctls[r]->arrive) >= o->sseq) mlcomm_append(buf, len, " %d", r);
}
