/*
 * The shared-memory transport: one POSIX shared segment per communicator, mapped by
 * every rank of the node, and the algorithms that move data through it.
 *
 * Synchronisation is by counters, never by a reset round. Each rank owns a control
 * block it alone writes (so there is no contention on a line) and every peer polls:
 *   arrive / done       the shm sequence number of the last op it published / finished,
 *   posted / reduced /  epochs (numbered slices, monotone over the comm's life) for the
 *   consumed            pipelined algorithms: "slices made readable", "slices whose
 *                       owned part is reduced", "slices fully read".
 * Small ops go one-shot through two alternating small slots per rank: op s uses slot
 * s % 2, written only once every rank is done with op s - 2. Large ops stage slices
 * through `slots` rotating slots per rank; slice e uses slot e % slots, written only
 * once every rank has consumed slice e - slots.
 */
#ifndef MLCOMM_BACKENDS_SHM_H
#define MLCOMM_BACKENDS_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include "backends/transport.h"
#include "core/internal.h"

#define SHM_LINE 64
#define SHM_PAGE 4096
#define SHM_DESC_RING 16 /* descriptors kept per rank: how far a rank may run ahead */
#define SHM_NO_OFF UINT64_MAX
#define SHM_CMA_CHUNK_BYTES 65536 /* per system call when peers' memory is read directly */

/* What a rank says about op s, for its peers: matched against their own call, and
 * where its zero-copy buffers are. */
struct shm_desc {
  uint64_t sseq;     /* shm sequence number this slot describes */
  uint64_t seq;      /* the communicator's collective sequence number (for messages) */
  uint64_t count;
  int32_t kind, dtype, redop, root;
  uint64_t send_off, recv_off; /* offsets in the segment, or SHM_NO_OFF */
  uint64_t send_addr, recv_addr; /* the buffers in the owner's address space (for CMA) */
};

struct shm_counter {
  _Atomic uint64_t v;
  char pad[SHM_LINE - sizeof(uint64_t)];
};

/* One per rank, written only by its owner. */
struct shm_ctl {
  struct shm_counter arrive, done, posted, reduced, consumed;
  int32_t pid;
  int32_t pad0;
  uint64_t start_time; /* /proc/<pid>/stat field 22: tells a reused pid apart */
  uint64_t probe_addr; /* where this rank keeps its pid, for the CMA probe */
  char pad1[SHM_LINE - 24];
  struct shm_desc desc[SHM_DESC_RING];
};

struct shm_header {
  uint64_t magic;
  int32_t nranks;
  _Atomic int32_t aborted_by; /* rank + 1 that called mlcommCommAbort, or 0 */
  _Atomic int32_t revoked_by; /* rank + 1 that revoked the communicator, or 0 */
  _Atomic int32_t revoke_failed; /* rank + 1 that it named as failed first, or 0 */
};

/* The geometry every rank computes alike (from rank 0's tuning). */
struct shm_layout {
  size_t small_bytes, slice_bytes, slots;
  size_t region_bytes; /* one rank's control block + slots, page-aligned */
  size_t ctl_off, small_off, in_off, out_off; /* within a region */
  size_t regions_off, pool_off, pool_bytes, total_bytes;
  int64_t nt_bytes;
};

struct shm_extent {
  size_t off, len; /* within this rank's pool */
  struct shm_extent *next;
};

/* Memory handed out by mlcommMemAlloc: the mapping outlives the communicator while
 * any allocation is alive. */
struct shm_mapping {
  char *base;
  size_t bytes;
  int fd;
  int refs; /* the comm, plus one per live allocation */
  size_t pool_off, pool_bytes; /* this rank's pool */
  struct shm_extent *free_list, *used_list; /* sorted by offset / any order */
  pthread_mutex_t lock;
};

struct shm_op;

struct shm_state {
  struct mlcomm_comm *comm;
  int rank, n;
  struct shm_layout lay;
  struct shm_mapping *map;
  struct shm_header *hdr;
  struct shm_ctl **ctls;        /* every rank's control block */
  char **regions;               /* every rank's region */
  uint64_t sseq;                /* shm ops started on this rank */
  uint64_t all_arrived;         /* the last op every rank was seen to arrive at */
  uint64_t all_done;            /* the last op every rank was seen to finish */
  unsigned polls;               /* blocked polls, to read the clock only now and then */
  uint64_t epoch;               /* slices allotted so far */
  struct shm_op *head, *tail;   /* started, not finished: run in order */
  struct shm_op *spare;         /* released ops kept for reuse */
  mlcommResult_t failed;        /* sticky: a peer died, aborted, or disagreed */
  char why[MLCOMM_ERRMSG_LEN / 2];
  bool liveness;                /* peers' pids are visible here */
  bool oversubscribed;          /* more ranks than CPUs on the node: yield when blocked */
  double liveness_ms;           /* how often a blocked rank checks its peers' pids */
  size_t cma_allreduce_bytes;   /* allreduce below this goes direct over CMA */
  bool cma;                     /* every rank can read every peer's memory (process_vm_readv) */
  uint64_t probe_value;         /* read by peers to test CMA */
  double blocked_since, last_check;
  void *scratch;                /* private, cache-sized: results before they are shared */
};

enum shm_step { SHM_BLOCKED, SHM_ADVANCED, SHM_DONE, SHM_FAILED };

struct shm_stage; /* stage.c: host copies of device buffers */

/* The algorithms a tune rule may pin, in the order of transport.c's names: one-shot
 * through the small slots; owners write every rank's output (CMA or the pool);
 * reduce-scatter + all-gather through the slices. */
enum shm_alg { SHM_ALG_SMALL, SHM_ALG_DIRECT, SHM_ALG_PIPELINE };

/* One-shot calls of up to SHM_INLINE_BYTES write no descriptor: the payload and a
 * signature of the call share one line, in the arrive line (kinds where every rank
 * waits for every other) or in the head line of a small slot (broadcast, reduce). */
enum shm_inl { SHM_INL_NONE, SHM_INL_ARRIVE, SHM_INL_SLOT };

struct shm_op {
  struct mlcomm_op *op;      /* what the algorithms run: user_op, or its staged shadow */
  struct mlcomm_op *user_op; /* the caller's op (the request's) */
  struct shm_stage *stage;   /* non-NULL when device buffers are staged */
  uint64_t sseq;
  uint64_t ebase, nslices; /* epochs [ebase, ebase + nslices) */
  uint64_t next_post, next_reduce, next_consume; /* per-stage slices done on this rank */
  size_t esize, bytes;     /* element size; this rank's payload bytes (send side) */
  size_t slice_elems;      /* elements per slice (per block for allgather/reduce-scatter) */
  bool small, direct, cma, published, checked, nt;
  int inl;                   /* enum shm_inl: where a tiny one-shot payload and its signature go */
  uint64_t sig;              /* inline one-shot ops: the call's signature (sync.c), else 0 */
  int pinned;                /* the algorithm a tune rule pinned (enum shm_alg), or -1 */
  uint64_t send_off, recv_off;
  int phase;
  bool finished;
  mlcommResult_t result;
  struct shm_op *next;
};

/* ---- segment.c */
mlcommResult_t shm_segment_create(struct shm_state *st);
void shm_mapping_unref(struct shm_mapping *map);
/* Offset of [p, p + len) in this rank's pool, or SHM_NO_OFF. */
uint64_t shm_pool_offset(const struct shm_state *st, const void *p, size_t len);

/* ---- cma.c: single-copy reads of a peer's private buffer (Linux cross-memory attach) */
/* Collective: can every rank read every peer's memory? Sets st->cma alike everywhere. */
mlcommResult_t shm_cma_probe(struct shm_state *st);
/* Reads bytes at remote address addr of rank into local (write: writes local there);
 * false (and st failed) on error. */
bool shm_cma_read(struct shm_state *st, int rank, void *local, uint64_t addr, size_t bytes);
bool shm_cma_write(struct shm_state *st, int rank, const void *local, uint64_t addr, size_t bytes);
/* Does rank's input for o need staging, or can peers read it where it is? */
static inline bool shm_reads_in_place(const struct shm_state *st, const struct shm_desc *d) {
  return d->send_off != SHM_NO_OFF || st->cma;
}

/* ---- stage.c: device (and managed) buffers copied to and from the host around the
 * algorithms with cudaMemcpyAsync + events; without CUDA in the build, never needed. */
bool shm_needs_stage(const struct shm_state *st, const struct mlcomm_op *op);
/* Queues the device-to-host copies of op's inputs; points o->op at the host shadow. */
mlcommResult_t shm_stage_begin(struct shm_state *st, struct shm_op *o, struct mlcomm_op *op);
/* SHM_ADVANCED once the inputs are on the host, SHM_BLOCKED before (never waits). */
enum shm_step shm_stage_ready(struct shm_state *st, struct shm_op *o);
/* After the algorithm: queues the copy of the result to the device, then SHM_DONE once
 * it has landed (SHM_BLOCKED before; SHM_FAILED with *res recorded). */
enum shm_step shm_stage_finish(struct shm_state *st, struct shm_op *o, mlcommResult_t *res);
void shm_stage_free(struct shm_op *o);

/* ---- pool.c */
mlcommResult_t shm_mem_alloc(void *state, size_t bytes, void **ptr, void **cookie);
void shm_mem_free(void *cookie, void *ptr);

/* ---- sync.c */
static inline uint64_t shm_load(const struct shm_counter *c) {
  return atomic_load_explicit(&c->v, memory_order_acquire);
}
static inline void shm_store(struct shm_counter *c, uint64_t v) {
  atomic_store_explicit(&c->v, v, memory_order_release);
}
/* True when every rank's counter (at field offset off in shm_ctl) is >= v. */
bool shm_all_reached(const struct shm_state *st, size_t off, uint64_t v);
#define SHM_ALL(st, field, v) shm_all_reached((st), offsetof(struct shm_ctl, field), (v))
/* The signature of an inline one-shot call (the call's fields and the low bits of sseq,
 * packed exactly, so two signatures are equal when the calls are); 0 when the call
 * cannot go inline (its payload, or a root beyond 16 bits). */
uint64_t shm_inline_sig(const struct mlcomm_op *op, uint64_t sseq, size_t payload);
/* Publishes this rank's descriptor of o and its arrival (SHM_BLOCKED while a slow peer
 * still needs the descriptor slot). */
enum shm_step shm_publish(struct shm_state *st, struct shm_op *o);
/* SHM_ADVANCED once rank who (-1: every rank) has arrived at o and called the same
 * thing; SHM_FAILED on a mismatch. */
enum shm_step shm_await(struct shm_state *st, struct shm_op *o, int who);
/* Marks o finished on this rank: nothing of it is read any more. */
static inline enum shm_step shm_finish(struct shm_state *st, struct shm_op *o) {
  shm_store(&st->ctls[st->rank]->done, o->sseq);
  return SHM_DONE;
}
/* May this rank write its small slot for o (every rank done with o - 2)? */
bool shm_small_slot_free(struct shm_state *st, const struct shm_op *o);
/* May this rank write its slice slots for epoch e (every rank consumed e - slots)? */
bool shm_slice_slot_free(const struct shm_state *st, uint64_t e);
/* Called when nothing advanced: notices an abort or a dead peer. */
void shm_check_peers(struct shm_state *st);
mlcommResult_t shm_fail(struct shm_state *st, mlcommResult_t res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void shm_describe(void *state, const struct mlcomm_op *op, char *buf, size_t len);

/* Addresses */
/* Where rank's one-shot payload of op sseq lies. Up to SHM_INLINE_BYTES it shares the
 * cache line of the rank's arrive counter (two halves, by parity), beside the call's
 * signature, so a peer that sees the arrival already holds the data and what was
 * called: one cache-line transfer per rank and op, no descriptor. The line:
 *   [arrive 8][sig 8 | payload 16][sig 8 | payload 16][seq 8]
 * (parity 0, parity 1, and the communicator's sequence number of the latest arrival,
 * for timeout reports). */
#define SHM_INLINE_BYTES 16
#define SHM_INLINE_HALF (sizeof(uint64_t) + SHM_INLINE_BYTES)
static inline char *shm_inline_half(const struct shm_state *st, int rank, uint64_t sseq) {
  return (char *)&st->ctls[rank]->arrive + sizeof(uint64_t) + (sseq & 1) * SHM_INLINE_HALF;
}
_Static_assert(2 * sizeof(uint64_t) + 2 * SHM_INLINE_HALF <= SHM_LINE,
               "the arrive line holds the counter, two inline halves and a sequence number");
static inline uint64_t *shm_arrive_seq(const struct shm_state *st, int rank) {
  return (uint64_t *)((char *)&st->ctls[rank]->arrive + sizeof(uint64_t) + 2 * SHM_INLINE_HALF);
}
/* Small slots per rank for one-shot calls that do not go inline: a broadcast's root and
 * a reduce's other ranks wait for no one, so they may run this many calls ahead. */
#define SHM_SMALL_SLOTS 8
/* A small slot is a head line, which only ever holds signatures (SHM_INL_SLOT), then
 * small_bytes of payload for calls that keep a descriptor: a peer probing the head for a
 * signature never reads payload bytes as one. */
static inline char *shm_small_base(const struct shm_state *st, int rank, uint64_t sseq) {
  return st->regions[rank] + st->lay.small_off +
         (sseq % SHM_SMALL_SLOTS) * (st->lay.small_bytes + SHM_LINE);
}
/* Where rank's signature of an inline op sseq lies (inl: enum shm_inl): in its arrive
 * line (all-to-all kinds), or at the head of its small slot (SHM_INL_SLOT: a broadcast
 * or a reduce, whose readers then poll that one line instead of the arrive line and a
 * descriptor). */
static inline uint64_t *shm_sig_at(const struct shm_state *st, int inl, int rank,
                                   uint64_t sseq) {
  if (inl == SHM_INL_SLOT) return (uint64_t *)shm_small_base(st, rank, sseq);
  return (uint64_t *)shm_inline_half(st, rank, sseq);
}
static inline char *shm_small_slot(const struct shm_state *st, const struct shm_op *o, int rank) {
  if (o->inl) return (char *)shm_sig_at(st, o->inl, rank, o->sseq) + sizeof(uint64_t);
  return shm_small_base(st, rank, o->sseq) + SHM_LINE;
}
static inline char *shm_in_slot(const struct shm_state *st, int rank, uint64_t epoch) {
  return st->regions[rank] + st->lay.in_off + (epoch % st->lay.slots) * st->lay.slice_bytes;
}
static inline char *shm_out_slot(const struct shm_state *st, int rank, uint64_t epoch) {
  return st->regions[rank] + st->lay.out_off + (epoch % st->lay.slots) * st->lay.slice_bytes;
}
static inline const struct shm_desc *shm_peer_desc(const struct shm_state *st, int rank,
                                                   uint64_t sseq) {
  return &st->ctls[rank]->desc[sseq % SHM_DESC_RING];
}
/* Rank j's zero-copy buffer (its published offset), or NULL. */
static inline char *shm_peer_buf(const struct shm_state *st, uint64_t off) {
  return off == SHM_NO_OFF ? NULL : st->map->base + off;
}

/* ---- copy.c */
/* memcpy, with streaming (non-temporal) stores when nt: the destination is not read
 * again soon, so it should not evict the slices in flight. */
void shm_copy(void *dst, const void *src, size_t bytes, bool nt);
void shm_copy_fence(void);
/* dst = srcs[0] op srcs[1] op ... op srcs[n-1], in that order (n >= 1). */
void shm_reduce_n(const struct mlcomm_op *op, void *dst, const void *const *srcs, int n,
                  size_t count);

/* ---- the algorithms, one file each: advance o as far as possible */
enum shm_step shm_barrier_step(struct shm_state *st, struct shm_op *o);
enum shm_step shm_allreduce_step(struct shm_state *st, struct shm_op *o);
enum shm_step shm_broadcast_step(struct shm_state *st, struct shm_op *o);
enum shm_step shm_reduce_step(struct shm_state *st, struct shm_op *o);
enum shm_step shm_allgather_step(struct shm_state *st, struct shm_op *o);
enum shm_step shm_reduce_scatter_step(struct shm_state *st, struct shm_op *o);

/* The one-shot path for payloads up to small_bytes (small.c). */
enum shm_step shm_small_step(struct shm_state *st, struct shm_op *o);

/* The pipelined pieces allreduce and reduce share (allreduce.c). */
/* Publishes o, waits for every rank and checks their calls; decides direct mode. */
enum shm_step shm_begin_large(struct shm_state *st, struct shm_op *o);
void shm_stage_inputs(struct shm_state *st, struct shm_op *o);       /* post */
/* Reduces this rank's part of every posted slice; mine: also into its own output;
 * consumed_too: it reads nothing after this (direct mode, non-root reduce). */
bool shm_reduce_parts(struct shm_state *st, struct shm_op *o, bool mine, bool consumed_too);
void shm_gather_parts(struct shm_state *st, struct shm_op *o);       /* consume */
/* Where rank j's input for epoch e (slice-relative element lo) is. */
const char *shm_input(const struct shm_state *st, const struct shm_op *o, int j, uint64_t e,
                      size_t elem);

/* Slice i of a buffer of total elements: [*lo, *lo + *len). */
static inline void shm_slice(const struct shm_op *o, uint64_t i, size_t total, size_t *lo,
                             size_t *len) {
  *lo = (size_t)i * o->slice_elems;
  *len = total - *lo < o->slice_elems ? total - *lo : o->slice_elems;
}

/* Elements [lo, hi) of part p when n parts share len elements. */
static inline void shm_part(size_t len, int n, int p, size_t *lo, size_t *hi) {
  size_t q = (len + (size_t)n - 1) / (size_t)n;
  q = (q + 15) & ~(size_t)15; /* whole vectors per part */
  *lo = q * (size_t)p < len ? q * (size_t)p : len;
  *hi = q * (size_t)(p + 1) < len ? q * (size_t)(p + 1) : len;
}

#endif
