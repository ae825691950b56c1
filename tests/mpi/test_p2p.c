/*
 * Point to point: Send/Recv of every datatype, probing messages of unknown size,
 * wildcards and the status they report, ordering, a receive buffer that is too small
 * (refused, message kept), a ring inside a group, async send/recv and empty messages.
 *
 * Every section sends to rank+1 and receives from rank-1 (itself with one rank), and
 * ends with an MPI barrier once its sends have completed, so a wildcard receive in a
 * later section can only match that section's messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static int next_rank(void) { return (tc_rank + 1) % tc_nranks; }
static int prev_rank(void) { return (tc_rank + tc_nranks - 1) % tc_nranks; }

static void section_end(void) { MPI_Barrier(MPI_COMM_WORLD); }

static bool status_is(const mlcommStatus_t *st, int source, int tag, size_t bytes,
                      const char *what)
{
  return CHECK(st->source == source && st->tag == tag && st->bytes == bytes,
               "%s: status {source %d, tag %d, bytes %zu}, expected {%d, %d, %zu}", what,
               st->source, st->tag, st->bytes, source, tag, bytes);
}

/* Blocking send to next and receive from prev without deadlocking a ring: rank 0 sends
 * first, everyone else receives first. With one rank the send must be async. */
static void ring_blocking(const void *send, void *recv, size_t count, mlcommDataType_t type,
                          int tag, mlcommStatus_t *st)
{
  if (tc_nranks == 1) {
    mlcommRequest_t r;
    CHECK_OK(mlcommSendAsync(send, count, type, 0, tag, tc_comm, &r));
    CHECK_OK(mlcommRecv(recv, count, type, 0, tag, tc_comm, st));
    CHECK_OK(mlcommWait(&r, NULL));
  } else if (tc_rank == 0) {
    CHECK_OK(mlcommSend(send, count, type, next_rank(), tag, tc_comm));
    CHECK_OK(mlcommRecv(recv, count, type, prev_rank(), tag, tc_comm, st));
  } else {
    CHECK_OK(mlcommRecv(recv, count, type, prev_rank(), tag, tc_comm, st));
    CHECK_OK(mlcommSend(send, count, type, next_rank(), tag, tc_comm));
  }
}

static void every_type(void)
{
  tc_section("Send/Recv of every datatype");
  for (int t = 0; t < mlcommNumTypes; t++) {
    mlcommDataType_t type = (mlcommDataType_t)t;
    size_t count = 1023 + (size_t)t * 331, bytes = count * tc_type_size(type);
    uint64_t seed = tc_seed(1, (uint64_t)t, 0, 0);
    int tag = 10 + t;
    char what[64];
    snprintf(what, sizeof what, "Send/Recv %s", tc_type_name(type));
    void *send = tc_galloc(bytes), *recv = tc_galloc(bytes), *expect = tc_galloc(bytes);
    tc_fill(send, type, mlcommSum, count, seed, tc_rank, 0);
    tc_fill(expect, type, mlcommSum, count, seed, prev_rank(), 0);
    uint64_t send_hash = tc_hash(send, bytes);
    mlcommStatus_t st = {-7, -7, 0};
    ring_blocking(send, recv, count, type, tag, &st);
    CHECK(memcmp(recv, expect, bytes) == 0, "%s: wrong data", what);
    status_is(&st, prev_rank(), tag, bytes, what);
    CHECK(tc_hash(send, bytes) == send_hash, "%s: sendbuff modified", what);
    tc_gcheck(send, what);
    tc_gcheck(recv, what);
    tc_gfree(send);
    tc_gfree(recv);
    tc_gfree(expect);
  }
  section_end();
}

/* The receiver does not know the size: Probe, allocate, Recv. The size is still a pure
 * function of the sender so the test can check what Probe reported. */
static size_t random_count(int sender, int iter)
{
  return (size_t)(tc_mix(tc_seed(2, (uint64_t)sender, (uint64_t)iter, 0)) % 300000);
}

static void probe_unknown_size(void)
{
  tc_section("Probe then Recv of unknown sizes");
  const int tag = 20;
  for (int it = 0; it < 6; it++) {
    size_t count = random_count(tc_rank, it);
    uint64_t seed = tc_seed(3, (uint64_t)it, 0, 0);
    int32_t *send = malloc(count * sizeof *send + 1);
    tc_fill(send, mlcommInt32, mlcommSum, count, seed, tc_rank, 0);
    mlcommRequest_t sreq;
    CHECK_OK(mlcommSendAsync(send, count, mlcommInt32, next_rank(), tag, tc_comm, &sreq));

    mlcommStatus_t pst = {-7, -7, 0}, rst = {-7, -7, 0};
    size_t expect_count = random_count(prev_rank(), it);
    if (CHECK_OK(mlcommProbe(prev_rank(), tag, tc_comm, &pst))) {
      status_is(&pst, prev_rank(), tag, expect_count * sizeof(int32_t), "Probe");
      size_t n = pst.bytes / sizeof(int32_t);
      int32_t *recv = tc_galloc(pst.bytes);
      if (CHECK_OK(mlcommRecv(recv, n, mlcommInt32, prev_rank(), tag, tc_comm, &rst))) {
        status_is(&rst, prev_rank(), tag, pst.bytes, "Recv after Probe");
        int32_t *expect = malloc(n * sizeof *expect + 1);
        tc_fill(expect, mlcommInt32, mlcommSum, n, seed, prev_rank(), 0);
        CHECK(memcmp(recv, expect, n * sizeof *expect) == 0, "Recv after Probe: wrong data");
        free(expect);
      }
      tc_gcheck(recv, "Recv after Probe");
      tc_gfree(recv);
    }
    CHECK_OK(mlcommWait(&sreq, NULL));
    free(send);
  }
  section_end();
}

static void iprobe_polling(void)
{
  tc_section("Iprobe polling");
  const int tag = 30;
  int found = -1;
  mlcommStatus_t st = {-7, -7, 0};
  /* Nobody has sent yet (sends happen after the barrier): nothing may be found. */
  CHECK_OK(mlcommIprobe(prev_rank(), tag, tc_comm, &found, &st));
  CHECK(found == 0, "Iprobe found a message that was never sent");
  found = -1;
  CHECK_OK(mlcommIprobe(MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &found, &st));
  CHECK(found == 0, "Iprobe(ANY_SOURCE, ANY_TAG) found a message that was never sent");
  MPI_Barrier(MPI_COMM_WORLD);

  size_t count = 12345;
  uint64_t seed = tc_seed(4, 0, 0, 0);
  double *send = malloc(count * sizeof *send), *recv = malloc(count * sizeof *recv);
  double *expect = malloc(count * sizeof *expect);
  tc_fill(send, mlcommFloat64, mlcommSum, count, seed, tc_rank, 0);
  tc_fill(expect, mlcommFloat64, mlcommSum, count, seed, prev_rank(), 0);
  mlcommRequest_t sreq;
  CHECK_OK(mlcommSendAsync(send, count, mlcommFloat64, next_rank(), tag, tc_comm, &sreq));
  found = 0;
  long polls = 0;
  double t0 = MPI_Wtime();
  while (!found && MPI_Wtime() - t0 < 60.0) {
    mlcommResult_t r = mlcommIprobe(prev_rank(), tag, tc_comm, &found, &st);
    if (r != mlcommSuccess) {
      CHECK_RES(r, mlcommSuccess);
      break;
    }
    polls++;
  }
  if (CHECK(found == 1, "Iprobe never found the message (%ld polls)", polls)) {
    status_is(&st, prev_rank(), tag, count * sizeof(double), "Iprobe");
    mlcommStatus_t rst;
    CHECK_OK(mlcommRecv(recv, count, mlcommFloat64, prev_rank(), tag, tc_comm, &rst));
    CHECK(memcmp(recv, expect, count * sizeof *recv) == 0, "Recv after Iprobe: wrong data");
  }
  CHECK_OK(mlcommWait(&sreq, NULL));
  free(send);
  free(recv);
  free(expect);
  section_end();
}

/* Every rank sends one message to rank 0, whose size and tag tell who sent it. */
static size_t wildcard_count(int sender, int round) { return (size_t)(sender + 1) * 1000 + (size_t)round * 7 + (size_t)sender; }

static void wildcards(void)
{
  tc_section("ANY_SOURCE / ANY_TAG and the status they report");
  for (int round = 0; round < 4; round++) {
    /* round 0: Recv(ANY, ANY); 1: Probe(ANY, ANY) then Recv(ANY, ANY) of that exact
     * message; 2: Recv(ANY_SOURCE, tag); 3: Recv(source, ANY_TAG). */
    int base = 40 + round * 10;
    size_t count = wildcard_count(tc_rank, round);
    uint64_t seed = tc_seed(5, (uint64_t)round, 0, 0);
    int32_t *send = malloc(count * sizeof *send);
    tc_fill(send, mlcommInt32, mlcommSum, count, seed, tc_rank, 0);
    mlcommRequest_t sreq;
    CHECK_OK(mlcommSendAsync(send, count, mlcommInt32, 0, base + tc_rank, tc_comm, &sreq));

    if (tc_rank == 0) {
      int *seen = calloc((size_t)tc_nranks, sizeof *seen);
      size_t cap = wildcard_count(tc_nranks, round) + 16;
      int32_t *buf = malloc(cap * sizeof *buf), *expect = malloc(cap * sizeof *expect);
      for (int m = 0; m < tc_nranks; m++) {
        mlcommStatus_t st = {-7, -7, 0};
        int src = round == 3 ? m : MLCOMM_ANY_SOURCE;
        int tag = round == 2 ? base + (tc_nranks - 1 - m) : MLCOMM_ANY_TAG;
        size_t want = cap;
        if (round == 1) {
          mlcommStatus_t pst = {-7, -7, 0};
          if (!CHECK_OK(mlcommProbe(MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &pst))) break;
          /* A buffer of exactly the probed size: a different message would not fit or
           * would show up in the status. */
          want = pst.bytes / sizeof(int32_t);
          if (!CHECK_OK(mlcommRecv(buf, want, mlcommInt32, src, tag, tc_comm, &st))) break;
          CHECK(st.source == pst.source && st.tag == pst.tag && st.bytes == pst.bytes,
                "Recv(ANY, ANY) after Probe(ANY, ANY) got {%d, %d, %zu}, probed {%d, %d, %zu}",
                st.source, st.tag, st.bytes, pst.source, pst.tag, pst.bytes);
        } else if (!CHECK_OK(mlcommRecv(buf, want, mlcommInt32, src, tag, tc_comm, &st))) {
          break;
        }
        if (!CHECK(st.source >= 0 && st.source < tc_nranks, "round %d: status.source %d",
                   round, st.source))
          continue;
        if (round == 2) CHECK(st.source == tc_nranks - 1 - m, "round 2: wrong source");
        if (round == 3) CHECK(st.source == m, "round 3: wrong source");
        seen[st.source]++;
        size_t n = wildcard_count(st.source, round);
        status_is(&st, st.source, base + st.source, n * sizeof(int32_t), "wildcard Recv");
        tc_fill(expect, mlcommInt32, mlcommSum, n, seed, st.source, 0);
        CHECK(st.bytes == n * sizeof(int32_t) && memcmp(buf, expect, st.bytes) == 0,
              "round %d: wrong data from rank %d", round, st.source);
      }
      for (int r = 0; r < tc_nranks; r++)
        CHECK(seen[r] == 1, "round %d: %d messages from rank %d, expected 1", round, seen[r], r);
      free(seen);
      free(buf);
      free(expect);
    }
    CHECK_OK(mlcommWait(&sreq, NULL));
    free(send);
    section_end();
  }
}

/* Messages from one sender with one tag arrive in order, small and large mixed (eager
 * and rendezvous protocols must not overtake each other). */
static void ordering(void)
{
  tc_section("message order for one sender and tag");
  enum { M = 48 };
  const int tag = 90;
  int32_t *msgs[M];
  mlcommRequest_t reqs[M];
  for (int i = 0; i < M; i++) {
    size_t n = (i % 8 == 7) ? 200001 : 2;
    msgs[i] = calloc(n, sizeof(int32_t));
    msgs[i][0] = i;
    msgs[i][1] = tc_rank;
    if (n > 2) msgs[i][n - 1] = -i;
    CHECK_OK(mlcommSendAsync(msgs[i], n, mlcommInt32, next_rank(), tag, tc_comm, &reqs[i]));
  }
  int32_t *buf = malloc(200001 * sizeof *buf);
  size_t out_of_order = 0;
  for (int i = 0; i < M; i++) {
    mlcommStatus_t st;
    if (!CHECK_OK(mlcommRecv(buf, 200001, mlcommInt32, prev_rank(), tag, tc_comm, &st))) break;
    size_t n = (i % 8 == 7) ? 200001 : 2;
    if (buf[0] != i || buf[1] != prev_rank() || st.bytes != n * sizeof(int32_t) ||
        (n > 2 && buf[n - 1] != -i))
      out_of_order++;
  }
  CHECK(out_of_order == 0, "%zu of %d messages arrived out of order", out_of_order, M);
  CHECK_OK(mlcommWaitAll(M, reqs, NULL));
  for (int i = 0; i < M; i++) free(msgs[i]);
  free(buf);
  section_end();
}

/* A too-small receive is refused and the message stays for the next receive. */
static void too_small(void)
{
  tc_section("receive buffer too small: refused, message kept");
  const int tag = 100;
  const size_t count = 1000;
  uint64_t seed = tc_seed(6, 0, 0, 0);
  int32_t *send = malloc(count * sizeof *send), *expect = malloc(count * sizeof *expect);
  tc_fill(send, mlcommInt32, mlcommSum, count, seed, tc_rank, 0);
  tc_fill(expect, mlcommInt32, mlcommSum, count, seed, prev_rank(), 0);
  mlcommRequest_t sreq;
  CHECK_OK(mlcommSendAsync(send, count, mlcommInt32, next_rank(), tag, tc_comm, &sreq));

  int32_t *small = tc_galloc(100 * sizeof(int32_t));
  mlcommStatus_t st = {-7, -7, 0};
  CHECK_RES(mlcommRecv(small, 100, mlcommInt32, prev_rank(), tag, tc_comm, &st),
            mlcommInvalidArgument);
  CHECK(strlen(mlcommGetLastError(tc_comm)) > 0, "no last-error sentence for a too-small Recv");
  CHECK(tc_gpattern_intact(small, 0, 100 * sizeof(int32_t)),
        "the refused Recv wrote its buffer");
  tc_gcheck(small, "too-small Recv");
  /* Wildcards do not make it consume the message either. */
  CHECK_RES(mlcommRecv(small, 100, mlcommInt32, MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &st),
            mlcommInvalidArgument);
  CHECK(tc_gpattern_intact(small, 0, 100 * sizeof(int32_t)),
        "the refused wildcard Recv wrote its buffer");

  mlcommStatus_t pst = {-7, -7, 0};
  if (CHECK_OK(mlcommProbe(prev_rank(), tag, tc_comm, &pst)))
    status_is(&pst, prev_rank(), tag, count * sizeof(int32_t), "Probe after refused Recv");
  int32_t *big = tc_galloc(count * sizeof(int32_t));
  if (CHECK_OK(mlcommRecv(big, count, mlcommInt32, prev_rank(), tag, tc_comm, &st))) {
    status_is(&st, prev_rank(), tag, count * sizeof(int32_t), "Recv after refused Recv");
    CHECK(memcmp(big, expect, count * sizeof(int32_t)) == 0, "message lost or corrupted");
  }
  CHECK_OK(mlcommWait(&sreq, NULL));
  tc_gfree(small);
  tc_gfree(big);
  free(send);
  free(expect);
  section_end();
}

/* Every rank sends 4 MiB to next and receives 4 MiB from prev with blocking calls: only
 * grouping makes that safe (a rendezvous send blocks until its receive is posted). */
static void group_ring(void)
{
  tc_section("ring of blocking Send+Recv inside a group");
  const size_t count = 1u << 20; /* floats: 4 MiB */
  for (int order = 0; order < 2; order++) {
    const int tag = 110 + order;
    uint64_t seed = tc_seed(7, (uint64_t)order, 0, 0);
    float *send = tc_galloc(count * sizeof(float)), *recv = tc_galloc(count * sizeof(float));
    float *expect = malloc(count * sizeof *expect);
    tc_fill(send, mlcommFloat32, mlcommSum, count, seed, tc_rank, 0);
    tc_fill(expect, mlcommFloat32, mlcommSum, count, seed, prev_rank(), 0);
    CHECK_OK(mlcommGroupStart());
    if (order == 0) {
      CHECK_OK(mlcommSend(send, count, mlcommFloat32, next_rank(), tag, tc_comm));
      CHECK_OK(mlcommRecv(recv, count, mlcommFloat32, prev_rank(), tag, tc_comm, NULL));
    } else {
      CHECK_OK(mlcommRecv(recv, count, mlcommFloat32, prev_rank(), tag, tc_comm, NULL));
      CHECK_OK(mlcommSend(send, count, mlcommFloat32, next_rank(), tag, tc_comm));
    }
    CHECK_OK(mlcommGroupEnd());
    CHECK(memcmp(recv, expect, count * sizeof(float)) == 0, "group ring %d: wrong data", order);
    tc_gcheck(recv, "group ring recv");
    tc_gcheck(send, "group ring send");
    tc_gfree(send);
    tc_gfree(recv);
    free(expect);
  }
  section_end();
}

static void async_p2p(void)
{
  tc_section("SendAsync / RecvAsync");
  const int tag = 120;
  const size_t count = 1500, cap = 2000;
  uint64_t seed = tc_seed(8, 0, 0, 0);
  uint64_t *send = malloc(count * sizeof *send), *expect = malloc(count * sizeof *expect);
  uint64_t *recv = tc_galloc(cap * sizeof *recv);
  tc_fill(send, mlcommUint64, mlcommSum, count, seed, tc_rank, 0);
  tc_fill(expect, mlcommUint64, mlcommSum, count, seed, prev_rank(), 0);
  /* Pre-posted receive (its sender only starts after the barrier), with room to spare. */
  mlcommRequest_t reqs[2];
  CHECK_OK(mlcommRecvAsync(recv, cap, mlcommUint64, prev_rank(), tag, tc_comm, &reqs[0]));
  MPI_Barrier(MPI_COMM_WORLD);
  CHECK_OK(mlcommSendAsync(send, count, mlcommUint64, next_rank(), tag, tc_comm, &reqs[1]));
  mlcommStatus_t st[2];
  CHECK_OK(mlcommWaitAll(2, reqs, st));
  status_is(&st[0], prev_rank(), tag, count * sizeof(uint64_t), "RecvAsync");
  status_is(&st[1], tc_rank, -1, count * sizeof(uint64_t), "SendAsync");
  CHECK(memcmp(recv, expect, count * sizeof *recv) == 0, "RecvAsync: wrong data");
  CHECK(tc_gpattern_intact(recv, count * sizeof *recv, cap * sizeof *recv),
        "RecvAsync wrote past the message's end");
  tc_gcheck(recv, "RecvAsync");
  tc_gfree(recv);
  free(send);
  free(expect);
  section_end();
}

static void empty_messages(void)
{
  tc_section("count 0 messages");
  const int tag = 130;
  char dummy[8] = {0};
  void *recv = tc_galloc(64);
  mlcommRequest_t sreq;
  /* One empty message into a count-0 receive, one into a receive with room. */
  CHECK_OK(mlcommSendAsync(dummy, 0, mlcommFloat32, next_rank(), tag, tc_comm, &sreq));
  mlcommStatus_t st = {-7, -7, 99};
  CHECK_OK(mlcommRecv(recv, 0, mlcommFloat32, prev_rank(), tag, tc_comm, &st));
  status_is(&st, prev_rank(), tag, 0, "empty Recv");
  CHECK_OK(mlcommWait(&sreq, NULL));

  CHECK_OK(mlcommSendAsync(dummy, 0, mlcommInt8, next_rank(), tag + 1, tc_comm, &sreq));
  mlcommStatus_t pst = {-7, -7, 99};
  CHECK_OK(mlcommProbe(prev_rank(), tag + 1, tc_comm, &pst));
  status_is(&pst, prev_rank(), tag + 1, 0, "Probe of an empty message");
  st.bytes = 99;
  CHECK_OK(mlcommRecv(recv, 16, mlcommInt8, prev_rank(), tag + 1, tc_comm, &st));
  status_is(&st, prev_rank(), tag + 1, 0, "empty message into a 16-byte Recv");
  CHECK(tc_gpattern_intact(recv, 0, 64), "an empty message wrote the receive buffer");
  tc_gcheck(recv, "empty Recv");
  CHECK_OK(mlcommWait(&sreq, NULL));
  tc_gfree(recv);
  section_end();
}

/* Receives posted earlier take messages first, even when the messages arrive while
 * both receives are pending (the sender pauses between them), and a message a probe
 * reported goes to the next matching receive, not to an earlier pending one with a
 * different pattern. Both raced before matching drained arrivals in one step. */
static void posting_order_under_arrival(void)
{
  tc_section("posting order kept while messages arrive; probe reports what Recv gets");
  if (tc_nranks < 2) return;
  enum { ITERS = 12 };
  int bad_order = 0, bad_probe = 0;
  for (int it = 0; it < ITERS; it++) {
    if (tc_rank == 1) {
      int32_t a = 1, b = 2;
      CHECK_OK(mlcommBarrier(tc_comm));
      usleep(2000);
      CHECK_OK(mlcommSend(&a, 1, mlcommInt32, 0, 5, tc_comm));
      usleep(2000);
      CHECK_OK(mlcommSend(&b, 1, mlcommInt32, 0, 5, tc_comm));
      /* Probe race: a 4-byte message with tag 6, then an 8-byte one with tag 5. */
      usleep(2000);
      int32_t c = 3, d[2] = {4, 4};
      CHECK_OK(mlcommSend(&c, 1, mlcommInt32, 0, 6, tc_comm));
      CHECK_OK(mlcommSend(d, 2, mlcommInt32, 0, 5, tc_comm));
    } else if (tc_rank == 0) {
      int32_t x = 0, y = 0;
      mlcommRequest_t r[2];
      CHECK_OK(mlcommRecvAsync(&x, 1, mlcommInt32, MLCOMM_ANY_SOURCE, MLCOMM_ANY_TAG, tc_comm, &r[0]));
      CHECK_OK(mlcommRecvAsync(&y, 1, mlcommInt32, 1, 5, tc_comm, &r[1]));
      CHECK_OK(mlcommBarrier(tc_comm));
      CHECK_OK(mlcommWaitAll(2, r, NULL));
      bad_order += x != 1 || y != 2;
      /* A pending any-tag receive, then a probe for tag 5: the probe must report the
       * message the next Recv(tag 5) gets, while the pending one takes tag 6. */
      int32_t pending = 0, got[2] = {0, 0};
      mlcommRequest_t rp;
      CHECK_OK(mlcommRecvAsync(&pending, 1, mlcommInt32, 1, MLCOMM_ANY_TAG, tc_comm, &rp));
      mlcommStatus_t st = {0, 0, 0}, st2 = {0, 0, 0};
      CHECK_OK(mlcommProbe(1, 5, tc_comm, &st));
      CHECK_OK(mlcommRecv(got, 2, mlcommInt32, MLCOMM_ANY_SOURCE, 5, tc_comm, &st2));
      CHECK_OK(mlcommWait(&rp, NULL));
      bad_probe += st.bytes != st2.bytes || st2.bytes != 8 || got[0] != 4 || pending != 3;
    } else {
      CHECK_OK(mlcommBarrier(tc_comm));
    }
  }
  CHECK(bad_order == 0, "%d of %d rounds: a later-posted receive took the first message",
        bad_order, ITERS);
  CHECK(bad_probe == 0, "%d of %d rounds: the probed message did not go to the next Recv",
        bad_probe, ITERS);
  section_end();
}

int main(int argc, char **argv)
{
  tc_init(&argc, &argv);
  every_type();
  probe_unknown_size();
  iprobe_polling();
  wildcards();
  ordering();
  posting_order_under_arrival();
  too_small();
  group_ring();
  async_p2p();
  empty_messages();
  return tc_finish();
}
