/*
 * Collective cases on any communicator of the multi-node test: the call, its
 * independent reference (tc_check_reduced recomputes every rank's input), the bytes
 * that must not change, and bitwise agreement of the result across ranks.
 */
#include <stdio.h>
#include <string.h>

#include "multinode.h"

/* A count-0 call gets a small real buffer so that "not touched" can be observed. */
enum { EMPTY_BODY = 64 };

static void *buffer(size_t bytes) { return tc_galloc(bytes ? bytes : EMPTY_BODY); }

static const char *coll_name(enum mn_coll coll)
{
  switch (coll) {
  case MN_ALLREDUCE: return "AllReduce";
  case MN_BROADCAST: return "Broadcast";
  case MN_REDUCE: return "Reduce";
  case MN_ALLGATHER: return "AllGather";
  case MN_REDUCESCATTER: return "ReduceScatter";
  case MN_BARRIER: return "Barrier";
  }
  return "?";
}

static bool reduces(enum mn_coll coll)
{
  return coll == MN_ALLREDUCE || coll == MN_REDUCE || coll == MN_REDUCESCATTER;
}

/* Elements of the send and receive buffers, as the API lays them out. */
static size_t send_elems(const struct mn_case *k)
{
  return k->coll == MN_REDUCESCATTER ? k->count * (size_t)k->c->nranks : k->count;
}
static size_t recv_elems(const struct mn_case *k)
{
  return k->coll == MN_ALLGATHER ? k->count * (size_t)k->c->nranks : k->count;
}

void mn_case_prepare(struct mn_case *k)
{
  const struct mn_comm *c = k->c;
  size_t tsize = tc_type_size(k->type);
  snprintf(k->what, sizeof k->what, "%s on %s (%d ranks): %s %s count=%zu %s root=%d",
           coll_name(k->coll), c->name, c->nranks, tc_type_name(k->type),
           reduces(k->coll) ? tc_op_name(k->op) : "-", k->count,
           k->inplace ? "in-place" : "out-of-place", k->root);
  k->seed = tc_seed(c->salt, (uint64_t)k->coll * 64 + (uint64_t)k->type, (uint64_t)k->op,
                    k->count * 8 + (size_t)k->inplace * 2 + (size_t)k->root * 16);
  k->req = MLCOMM_REQUEST_NULL;
  k->started = false;
  k->send = k->recv = NULL;
  if (k->coll == MN_BARRIER) return;

  k->recv = buffer(recv_elems(k) * tsize);
  switch (k->coll) {
  case MN_ALLGATHER:
    k->send = k->inplace ? (char *)k->recv + (size_t)c->rank * k->count * tsize
                         : buffer(k->count * tsize);
    tc_fill(k->send, k->type, mlcommSum, k->count, k->seed, c->rank, 0);
    break;
  case MN_REDUCESCATTER:
    if (k->inplace) {
      /* In place, recvbuff is this rank's block of sendbuff (NCCL's layout). */
      tc_gfree(k->recv);
      k->send = buffer(send_elems(k) * tsize);
      k->recv = (char *)k->send + (size_t)c->rank * k->count * tsize;
    } else {
      k->send = buffer(send_elems(k) * tsize);
    }
    tc_fill(k->send, k->type, k->op, send_elems(k), k->seed, c->rank, 0);
    break;
  case MN_BROADCAST:
    k->send = k->inplace ? k->recv : buffer(k->count * tsize);
    if (c->rank == k->root) tc_fill(k->send, k->type, mlcommSum, k->count, k->seed, k->root, 0);
    break;
  default: /* AllReduce, Reduce */
    k->send = k->inplace ? k->recv : buffer(k->count * tsize);
    tc_fill(k->send, k->type, k->op, k->count, k->seed, c->rank, 0);
    break;
  }
  k->send_hash = tc_hash(k->send, send_elems(k) * tsize);
}

void mn_case_start(struct mn_case *k, bool async)
{
  const struct mn_comm *c = k->c;
  mlcommRequest_t *req = async ? &k->req : NULL;
  mlcommResult_t r;
  switch (k->coll) {
  case MN_ALLREDUCE:
    r = async ? mlcommAllReduceAsync(k->send, k->recv, k->count, k->type, k->op, c->comm, req)
              : mlcommAllReduce(k->send, k->recv, k->count, k->type, k->op, c->comm);
    break;
  case MN_BROADCAST:
    r = async ? mlcommBroadcastAsync(k->send, k->recv, k->count, k->type, k->root, c->comm, req)
              : mlcommBroadcast(k->send, k->recv, k->count, k->type, k->root, c->comm);
    break;
  case MN_REDUCE:
    r = async ? mlcommReduceAsync(k->send, k->recv, k->count, k->type, k->op, k->root, c->comm,
                                  req)
              : mlcommReduce(k->send, k->recv, k->count, k->type, k->op, k->root, c->comm);
    break;
  case MN_ALLGATHER:
    r = async ? mlcommAllGatherAsync(k->send, k->recv, k->count, k->type, c->comm, req)
              : mlcommAllGather(k->send, k->recv, k->count, k->type, c->comm);
    break;
  case MN_REDUCESCATTER:
    r = async ? mlcommReduceScatterAsync(k->send, k->recv, k->count, k->type, k->op, c->comm,
                                         req)
              : mlcommReduceScatter(k->send, k->recv, k->count, k->type, k->op, c->comm);
    break;
  default:
    r = async ? mlcommBarrierAsync(c->comm, req) : mlcommBarrier(c->comm);
    break;
  }
  k->started = tc_check_res(r, mlcommSuccess, k->what, __FILE__, __LINE__);
}

/* Results that every rank holds must be the same bytes everywhere, not merely each
 * within tolerance of the reference. */
static void check_identical(const struct mn_case *k, const void *buf, size_t bytes)
{
  CHECK(tc_same_everywhere(tc_hash(buf, bytes), k->c->mpi), "%s: result differs between ranks",
        k->what);
}

static void check_results(const struct mn_case *k)
{
  const struct mn_comm *c = k->c;
  size_t tsize = tc_type_size(k->type);
  switch (k->coll) {
  case MN_ALLREDUCE:
    tc_check_reduced(k->recv, k->type, k->op, k->count, k->seed, 0, c->nranks, k->what);
    break;
  case MN_REDUCE:
    if (c->rank == k->root)
      tc_check_reduced(k->recv, k->type, k->op, k->count, k->seed, 0, c->nranks, k->what);
    else if (!k->inplace)
      CHECK(tc_gpattern_intact(k->recv, 0, k->count * tsize), "%s: non-root recvbuff written",
            k->what);
    break;
  case MN_BROADCAST: {
    void *expect = buffer(k->count * tsize);
    tc_fill(expect, k->type, mlcommSum, k->count, k->seed, k->root, 0);
    CHECK(memcmp(k->recv, expect, k->count * tsize) == 0, "%s: recvbuff differs from root's data",
          k->what);
    tc_gfree(expect);
    break;
  }
  case MN_ALLGATHER: {
    void *expect = buffer(k->count * tsize);
    for (int b = 0; b < c->nranks; b++) {
      tc_fill(expect, k->type, mlcommSum, k->count, k->seed, b, 0);
      CHECK(memcmp((char *)k->recv + (size_t)b * k->count * tsize, expect, k->count * tsize) == 0,
            "%s: block of rank %d differs from its data", k->what, b);
    }
    tc_gfree(expect);
    break;
  }
  case MN_REDUCESCATTER:
    tc_check_reduced(k->recv, k->type, k->op, k->count, k->seed, (size_t)c->rank * k->count,
                     c->nranks, k->what);
    break;
  default: break;
  }
  /* Sendbuffs out of place are read only; on a non-root Broadcast rank its content is
   * unspecified input, still never written. */
  if (!k->inplace && k->send)
    CHECK(tc_hash(k->send, send_elems(k) * tsize) == k->send_hash, "%s: sendbuff modified",
          k->what);
  if (k->count == 0 && k->recv)
    CHECK(tc_gpattern_intact(k->recv, 0, EMPTY_BODY), "%s: count 0 wrote the buffer", k->what);
}

void mn_case_check(struct mn_case *k)
{
  size_t tsize = tc_type_size(k->type);
  if (k->started) check_results(k);
  /* Every rank takes part whether or not its call succeeded: the hash comparison is
   * collective over MPI. */
  if (k->coll == MN_ALLREDUCE || k->coll == MN_BROADCAST || k->coll == MN_ALLGATHER)
    check_identical(k, k->recv, recv_elems(k) * tsize);

  /* Free what was allocated: in place, one of the two pointers is inside the other. */
  void *owned_send = k->send, *owned_recv = k->recv;
  if (k->inplace) {
    if (k->coll == MN_ALLGATHER) owned_send = NULL;
    else if (k->coll == MN_REDUCESCATTER) owned_recv = NULL;
    else owned_send = NULL;
  }
  if (owned_send) {
    tc_gcheck(owned_send, k->what);
    tc_gfree(owned_send);
  }
  if (owned_recv) {
    tc_gcheck(owned_recv, k->what);
    tc_gfree(owned_recv);
  }
  k->send = k->recv = NULL;
}

void mn_run_case(const struct mn_comm *c, enum mn_coll coll, mlcommDataType_t type,
                 mlcommRedOp_t op, size_t count, int inplace, bool async, int root)
{
  struct mn_case k = {.c = c, .coll = coll, .type = type, .op = op, .count = count,
                      .inplace = inplace, .root = root};
  mn_case_prepare(&k);
  mn_case_start(&k, async);
  if (async && k.started) {
    /* One test before the wait: an Async call must return before its peers arrive,
     * and a test must not complete it early or wrongly. */
    int done = 0;
    if (CHECK_OK(mlcommTest(&k.req, &done, MLCOMM_STATUS_IGNORE)) && !done)
      k.started = CHECK_OK(mlcommWait(&k.req, MLCOMM_STATUS_IGNORE));
    else if (!done)
      k.started = false;
  }
  mn_case_check(&k);
}

/* ---------------------------------------------------------------- the matrix */

static const mlcommDataType_t types[] = {mlcommFloat32, mlcommBfloat16, mlcommInt64};
static const mlcommRedOp_t ops[] = {mlcommSum, mlcommMax, mlcommAvg};
enum { NTYPES = 3, NOPS = 3 };
static const enum mn_coll colls[] = {MN_ALLREDUCE, MN_BROADCAST, MN_REDUCE, MN_ALLGATHER,
                                     MN_REDUCESCATTER};

/* 3 MiB of the type and a few elements more, so nothing divides evenly; for AllGather
 * and ReduceScatter that is the whole buffer, split over the ranks. */
static size_t large_count(const struct mn_comm *c, enum mn_coll coll, mlcommDataType_t type)
{
  size_t whole = (3u << 20) / tc_type_size(type) + 5;
  if (coll == MN_ALLGATHER || coll == MN_REDUCESCATTER) return whole / (size_t)c->nranks + 1;
  return whole;
}

void mn_collectives(const struct mn_comm *c, bool full)
{
  /* 1001 and 70001 elements: odd, below and above the MPI transport's ring threshold. */
  const size_t small[] = {0, 1, 1001, 70001};
  /* Roots on the last node and on node 0 but not rank 0, where the layout has them. */
  const int roots[] = {c->nranks - 1, c->nranks > 1 ? 1 : 0};
  int n = 0;     /* cases of small counts so far: picks roots and the subset */
  int combo = 0; /* (collective, type, op) combinations so far: picks the large one's mode */
  for (size_t ci = 0; ci < sizeof colls / sizeof colls[0]; ci++) {
    enum mn_coll coll = colls[ci];
    tc_section("%s on %s: %s", full ? "every case" : "a subset", c->name, coll_name(coll));
    for (int ti = 0; ti < NTYPES; ti++) {
      for (int oi = 0; oi < (reduces(coll) ? NOPS : 1); oi++, combo++) {
        for (int mode = 0; mode < 4; mode++) {
          int inplace = mode & 1;
          bool async = (mode & 2) != 0;
          for (size_t si = 0; si < sizeof small / sizeof small[0]; si++, n++)
            if (full || (int)si == (n / 4) % 4)
              mn_run_case(c, coll, types[ti], ops[oi], small[si], inplace, async, roots[n % 2]);
          /* The large count once per (collective, type, op), in a mode that rotates, so
           * each collective still runs it in and out of place, blocking and Async. */
          if (combo % 4 == mode && (full || ti == oi % NTYPES))
            mn_run_case(c, coll, types[ti], ops[oi], large_count(c, coll, types[ti]), inplace,
                        async, roots[combo % 2]);
        }
      }
    }
  }
  for (int async = 0; async < 2; async++)
    mn_run_case(c, MN_BARRIER, mlcommFloat32, mlcommSum, 0, 0, async, 0);
}

void mn_collectives_in_flight(const struct mn_comm *c)
{
  tc_section("one Async call of every kind in flight at once on %s", c->name);
  struct mn_case k[] = {
      {.coll = MN_ALLREDUCE, .type = mlcommFloat32, .op = mlcommSum, .count = 70001},
      {.coll = MN_BROADCAST, .type = mlcommInt64, .count = 1001, .root = c->nranks - 1},
      {.coll = MN_REDUCE, .type = mlcommBfloat16, .op = mlcommAvg, .count = 30001,
       .root = c->nranks / 2},
      {.coll = MN_ALLGATHER, .type = mlcommBfloat16, .count = 4097, .inplace = 1},
      {.coll = MN_BARRIER, .type = mlcommFloat32},
      {.coll = MN_REDUCESCATTER, .type = mlcommInt64, .op = mlcommMax, .count = 12345},
      {.coll = MN_ALLREDUCE, .type = mlcommInt64, .op = mlcommAvg, .count = 1, .inplace = 1},
  };
  enum { N = sizeof k / sizeof k[0] };
  mlcommRequest_t reqs[N];
  for (int i = 0; i < N; i++) {
    k[i].c = c;
    mn_case_prepare(&k[i]);
    mn_case_start(&k[i], true);
    reqs[i] = k[i].req;
  }
  bool ok = CHECK_OK(mlcommWaitAll(N, reqs, NULL));
  for (int i = 0; i < N; i++) {
    if (!ok) k[i].started = false;
    mn_case_check(&k[i]);
  }
}
