/*
 * Point-to-point on the world communicator of the multi-node test: every ordered pair
 * of ranks, so every pair of nodes and every pair inside a node, at sizes that take
 * each of MPI's protocols (eager and rendezvous, over vader inside a node and tcp
 * between nodes); then receives and probes with wildcards, where messages from ranks
 * of several nodes race.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multinode.h"

static const char *where(int peer) { return mn.node_of[peer] == mn.node ? "same node" : "across nodes"; }

static void *filled(size_t bytes, uint64_t seed, int sender)
{
  void *p = tc_galloc(bytes);
  tc_fill(p, mlcommUint8, mlcommSum, bytes, seed, sender, 0);
  return p;
}

/* Step d of n-1: every rank sends to rank+d and receives from rank-d, so after all
 * steps every ordered pair has exchanged one message of each size. */
static void every_pair(void)
{
  tc_section("send/recv between every ordered pair of ranks");
  const size_t sizes[] = {0, 1, 12345, (1u << 20) + 3};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    size_t bytes = sizes[si];
    for (int d = 1; d < tc_nranks; d++) {
      int to = (tc_rank + d) % tc_nranks, from = (tc_rank - d + tc_nranks) % tc_nranks;
      uint64_t seed = tc_seed(0x9292, bytes, (uint64_t)d, 0);
      void *out = filled(bytes ? bytes : 1, seed, tc_rank);
      void *in = tc_galloc(bytes ? bytes : 1);
      void *expect = filled(bytes ? bytes : 1, seed, from);
      int tag = (int)(si * 1000 + (size_t)d);
      mlcommRequest_t sreq = MLCOMM_REQUEST_NULL;
      mlcommStatus_t st = {.source = -2, .tag = -2, .bytes = 999};
      bool sent = CHECK_OK(mlcommSendAsync(out, bytes, mlcommUint8, to, tag, tc_comm, &sreq));
      if (CHECK_OK(mlcommRecv(in, bytes, mlcommUint8, from, tag, tc_comm, &st))) {
        CHECK(st.source == from && st.tag == tag && st.bytes == bytes,
              "recv of %zu bytes from %d (%s): status says source %d tag %d bytes %zu", bytes,
              from, where(from), st.source, st.tag, st.bytes);
        CHECK(memcmp(in, expect, bytes) == 0, "recv of %zu bytes from %d (%s): wrong data",
              bytes, from, where(from));
      }
      if (sent) CHECK_OK(mlcommWait(&sreq, MLCOMM_STATUS_IGNORE));
      tc_gcheck(in, "recv buffer");
      tc_gfree(out);
      tc_gfree(in);
      tc_gfree(expect);
    }
  }
}

/* Each rank sends one message to every other rank, its size and tag telling the
 * sender; the receiver takes them with MLCOMM_ANY_SOURCE / MLCOMM_ANY_TAG, alternately
 * by a plain wildcard receive and by a wildcard probe then an exact receive. */
static size_t wildcard_bytes(int sender) { return (size_t)sender * 4099 + 17; }

static void wildcards(void)
{
  tc_section("wildcard receives and probes from ranks on every node");
  enum { TAG_BASE = 500 };
  uint64_t seed = tc_seed(0x3c3c, (uint64_t)tc_nranks, 0, 0);
  int npeers = tc_nranks - 1;
  mlcommRequest_t *sreqs = calloc((size_t)tc_nranks, sizeof *sreqs);
  void *out = filled(wildcard_bytes(tc_rank), seed, tc_rank);
  for (int p = 0; p < tc_nranks; p++)
    if (p != tc_rank)
      CHECK_OK(mlcommSendAsync(out, wildcard_bytes(tc_rank), mlcommUint8, p, TAG_BASE + tc_rank,
                               tc_comm, &sreqs[p]));

  size_t biggest = wildcard_bytes(tc_nranks - 1);
  int *seen = calloc((size_t)tc_nranks, sizeof *seen);
  for (int k = 0; k < npeers; k++) {
    mlcommStatus_t st = {.source = -2, .tag = -2, .bytes = 0};
    void *in = tc_galloc(biggest);
    mlcommResult_t r;
    if (k % 2 == 0) {
      r = mlcommRecv(in, biggest, mlcommUint8, MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &st);
    } else {
      r = mlcommProbe(MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &st);
      if (r == mlcommSuccess) {
        mlcommStatus_t probed = st;
        /* Exactly the probed size: the probed message is the one received. */
        r = mlcommRecv(in, probed.bytes, mlcommUint8, probed.source, probed.tag, tc_comm, &st);
        if (r == mlcommSuccess)
          CHECK(st.source == probed.source && st.bytes == probed.bytes,
                "received (%d, %zu bytes) is not the probed message (%d, %zu bytes)", st.source,
                st.bytes, probed.source, probed.bytes);
      }
    }
    if (CHECK_OK(r)) {
      int s = st.source;
      if (CHECK(s >= 0 && s < tc_nranks && s != tc_rank && !seen[s],
                "wildcard receive %d: source %d (seen before or impossible)", k, s)) {
        seen[s] = 1;
        CHECK(st.tag == TAG_BASE + s && st.bytes == wildcard_bytes(s),
              "wildcard message from %d (%s): tag %d bytes %zu, expected tag %d bytes %zu", s,
              where(s), st.tag, st.bytes, TAG_BASE + s, wildcard_bytes(s));
        void *expect = filled(wildcard_bytes(s), seed, s);
        CHECK(st.bytes == wildcard_bytes(s) && memcmp(in, expect, st.bytes) == 0,
              "wildcard message from %d (%s): wrong data", s, where(s));
        tc_gfree(expect);
      }
    }
    tc_gcheck(in, "wildcard recv buffer");
    tc_gfree(in);
  }
  CHECK_OK(mlcommWaitAll(tc_nranks, sreqs, NULL));
  int found = 1;
  mlcommStatus_t st;
  /* Nothing is left over: every message was received exactly once. */
  CHECK_OK(mlcommIprobe(MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &found, &st));
  CHECK(found == 0, "a message from %d (tag %d) is left after the wildcard receives", st.source,
        st.tag);
  free(seen);
  free(sreqs);
  tc_gfree(out);
}

void mn_p2p(void)
{
  every_pair();
  wildcards();
}
