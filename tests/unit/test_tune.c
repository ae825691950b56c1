/*
 * Transport selection from data: tune strings (src/backends/tune.c) and the registry's
 * choice from caps and scores (src/backends/registry.c). Runs under mpirun -np 1, so
 * communicators hold the shm and mpi transports (and nccl where it is built and a GPU
 * answers; it never does here).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/transport.h"

static int parse(const struct mlcomm_transport *t, const char *text, struct mlcomm_tune *out) {
  *out = (struct mlcomm_tune){NULL, 0};
  return mlcomm_tune_parse(t, text, "test", out);
}

static void lookup(const struct mlcomm_tune *tune, enum mlcomm_op_kind k, size_t size, int *score,
                   int *alg) {
  mlcomm_tune_lookup(tune, k, size, score, alg);
}

/* The issue-style string: kinds omitted in the second rule mean every kind. */
static void rules_cover_kinds_and_ranges(void **state) {
  (void)state;
  struct mlcomm_tune t;
  assert_int_equal(parse(&mlcomm_transport_shm,
                         "all:0-inf:20#allreduce:0-4k:@small#4k-inf:@pipeline", &t),
                   mlcommSuccess);
  assert_int_equal(t.nrules, 3);
  int score, alg;
  lookup(&t, MLCOMM_OP_ALLREDUCE, 0, &score, &alg);
  assert_int_equal(score, 20);
  assert_int_equal(alg, 0); /* small */
  lookup(&t, MLCOMM_OP_ALLREDUCE, 4095, &score, &alg);
  assert_int_equal(alg, 0);
  lookup(&t, MLCOMM_OP_ALLREDUCE, 4096, &score, &alg); /* ranges are [lo, hi) */
  assert_int_equal(alg, 2);
  lookup(&t, MLCOMM_OP_BROADCAST, 100, &score, &alg);
  assert_int_equal(score, 20);
  assert_int_equal(alg, -1); /* the allreduce-only rule does not reach it */
  lookup(&t, MLCOMM_OP_BROADCAST, 1 << 20, &score, &alg);
  assert_int_equal(alg, 2); /* "4k-inf:@pipeline" names no kind: every kind */
  mlcomm_tune_fini(&t);

  /* Later rules win where they overlap; elements in any order; K/M/G suffixes. */
  assert_int_equal(parse(&mlcomm_transport_mpi,
                         "all:0-inf:10#reduce,allreduce:1M-inf:0#@ring:64K-1m:allreduce:99", &t),
                   mlcommSuccess);
  lookup(&t, MLCOMM_OP_ALLREDUCE, 64 << 10, &score, &alg);
  assert_int_equal(score, 99);
  assert_int_equal(alg, 1);
  lookup(&t, MLCOMM_OP_ALLREDUCE, (64 << 10) - 1, &score, &alg);
  assert_int_equal(score, 10);
  assert_int_equal(alg, -1);
  lookup(&t, MLCOMM_OP_REDUCE, 1 << 30, &score, &alg);
  assert_int_equal(score, 0);
  lookup(&t, MLCOMM_OP_SEND, 1 << 30, &score, &alg);
  assert_int_equal(score, 10);
  mlcomm_tune_fini(&t);
}

static void bad_rules_are_named(void **state) {
  (void)state;
  static const struct {
    const char *text, *says;
  } cases[] = {
      {"allreduce:0-4k", "neither a score nor an @algorithm"},
      {"allreduc:0-4k:5", "'allreduc' is not an op kind"},
      {"send:5", "does not carry send"}, /* shm has no point-to-point */
      {"allreduce:4k-1k:5", "LO is not below its HI"},
      {"allreduce:0-4x:5", "a size range is LO-HI"},
      {"allreduce:@ring", "unknown algorithm; this transport has: @small @direct @pipeline"},
      {"allreduce:5:6", "has two scores"},
      {"allreduce::5", "empty"},
      {"0-1k:0-2k:5", "two size ranges"},
      {"allreduce:2000000", "a score is 0..1000000"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct mlcomm_tune t;
    assert_int_equal(parse(&mlcomm_transport_shm, cases[i].text, &t), mlcommInvalidArgument);
    const char *msg = mlcommGetLastError(NULL);
    if (!strstr(msg, cases[i].says) || !strstr(msg, "test: rule"))
      fail_msg("'%s': expected '%s' in '%s'", cases[i].text, cases[i].says, msg);
    mlcomm_tune_fini(&t);
  }
}

/* Every built-in tune string parses (a typo there would only show at init). */
static void builtin_tunes_parse(void **state) {
  (void)state;
  for (int i = 0; i < mlcomm_ntransports; i++) {
    struct mlcomm_tune t;
    assert_int_equal(parse(mlcomm_transports[i], mlcomm_transports[i]->tune, &t), mlcommSuccess);
    assert_true(t.nrules > 0);
    mlcomm_tune_fini(&t);
  }
}

static mlcommComm_t comm_with(const char *var, const char *value, int transport) {
  if (var) setenv(var, value, 1);
  mlcommConfig_t cfg = MLCOMM_CONFIG_INITIALIZER;
  cfg.transport = transport;
  mlcommComm_t comm = NULL;
  mlcommResult_t res = mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, &cfg);
  if (var) unsetenv(var);
  if (res != mlcommSuccess) fail_msg("init: %s", mlcommGetLastError(NULL));
  return comm;
}

static const char *carrier(mlcommComm_t comm, enum mlcomm_op_kind kind, size_t count, int *alg) {
  static float buf[4096];
  struct mlcomm_op op = {.kind = kind, .sendbuf = buf, .recvbuf = buf + 2048, .count = count,
                         .dtype = mlcommFloat32, .redop = mlcommSum, .peer = 0, .alg = -1};
  const struct mlcomm_tinst *ti = mlcomm_transport_select(comm, &op, "test");
  if (alg) *alg = op.alg;
  return ti ? ti->t->name : NULL;
}

/* Under auto the highest score wins; the environment's rules change it per size. */
static void selection_follows_scores(void **state) {
  (void)state;
  mlcommComm_t comm = comm_with(NULL, NULL, mlcommTransportAuto);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 1, NULL), "shm");
  assert_string_equal(carrier(comm, MLCOMM_OP_BARRIER, 0, NULL), "shm");
  assert_string_equal(carrier(comm, MLCOMM_OP_SEND, 4, NULL), "mpi"); /* caps: shm has none */
  mlcommCommDestroy(comm);

  comm = comm_with("MLCOMM_MPI_TUNE", "allreduce:1k-inf:50:@ring", mlcommTransportAuto);
  int alg = 0;
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 255, &alg), "shm"); /* 1020 bytes */
  assert_int_equal(alg, -1);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 256, &alg), "mpi");
  assert_int_equal(alg, 1); /* ring, pinned */
  assert_string_equal(carrier(comm, MLCOMM_OP_REDUCE, 4096, NULL), "shm");
  mlcommCommDestroy(comm);

  /* Score 0 is "never": with shm at 0 for allgather, MPI carries it. */
  comm = comm_with("MLCOMM_SHM_TUNE", "allgather:0", mlcommTransportAuto);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLGATHER, 8, NULL), "mpi");
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 8, NULL), "shm");
  mlcommCommDestroy(comm);
}

/* A forced transport carries every kind it declares; MPI what it lacks. */
static void forced_transport_and_fallback(void **state) {
  (void)state;
  mlcommComm_t comm = comm_with(NULL, NULL, mlcommTransportShm);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 1 << 20, NULL), "shm");
  assert_string_equal(carrier(comm, MLCOMM_OP_RECV, 1, NULL), "mpi");
  mlcommCommDestroy(comm);
  /* Forcing ignores scores: shm at 0 still carries its collectives. */
  comm = comm_with("MLCOMM_SHM_TUNE", "all:0", mlcommTransportShm);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 8, NULL), "shm");
  mlcommCommDestroy(comm);
  comm = comm_with(NULL, NULL, mlcommTransportMpi);
  assert_string_equal(carrier(comm, MLCOMM_OP_ALLREDUCE, 8, NULL), "mpi");
  assert_string_equal(carrier(comm, MLCOMM_OP_BARRIER, 0, NULL), "mpi");
  mlcommCommDestroy(comm);
}

/* Every transport scored 0: the call is refused with a sentence, not sent anywhere. */
static void nothing_left_is_refused(void **state) {
  (void)state;
  setenv("MLCOMM_MPI_TUNE", "allreduce:0", 1);
  mlcommComm_t comm = comm_with("MLCOMM_SHM_TUNE", "allreduce:0", mlcommTransportAuto);
  unsetenv("MLCOMM_MPI_TUNE");
  assert_null(carrier(comm, MLCOMM_OP_ALLREDUCE, 8, NULL));
  assert_non_null(strstr(mlcommGetLastError(comm), "no transport of this communicator"));
  float x = 1;
  assert_int_equal(mlcommAllReduce(&x, &x, 1, mlcommFloat32, mlcommSum, comm), mlcommUnsupported);
  assert_string_equal(carrier(comm, MLCOMM_OP_BROADCAST, 8, NULL), "shm");
  mlcommCommDestroy(comm);
}

/* A bad tune string fails creation with the variable named, on every rank. */
static void bad_tune_env_fails_init(void **state) {
  (void)state;
  setenv("MLCOMM_SHM_TUNE", "allreduce:0-4k:@fast", 1);
  mlcommComm_t comm = NULL;
  assert_int_equal(mlcommCommInitFromMPI(&comm, MPI_COMM_WORLD, NULL), mlcommInvalidArgument);
  unsetenv("MLCOMM_SHM_TUNE");
  assert_null(comm);
  const char *msg = mlcommGetLastError(NULL);
  assert_non_null(strstr(msg, "MLCOMM_SHM_TUNE"));
  assert_non_null(strstr(msg, "unknown algorithm"));
}

/* The first communicator of the process reports unknown MLCOMM_* variables at INFO,
 * with the nearest known name (must run before any other creates one). */
static void misspelled_variable_is_reported(void **state) {
  (void)state;
  setenv("MLCOMM_TIMOUT_MS", "5", 1);
  setenv("MLCOMM_DEBUG", "INFO", 1);
  fflush(stderr);
  char path[] = "/tmp/mlcomm_unit_tune_XXXXXX";
  int fd = mkstemp(path), saved = dup(2);
  assert_true(fd >= 0 && saved >= 0);
  dup2(fd, 2);
  mlcommComm_t comm = comm_with(NULL, NULL, mlcommTransportAuto);
  mlcommCommDestroy(comm);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  unsetenv("MLCOMM_TIMOUT_MS");
  unsetenv("MLCOMM_DEBUG");
  char text[8192] = "";
  lseek(fd, 0, SEEK_SET);
  ssize_t got = read(fd, text, sizeof text - 1);
  close(fd);
  unlink(path);
  assert_true(got > 0);
  if (!strstr(text, "environment variable MLCOMM_TIMOUT_MS is not one mlcomm reads") ||
      !strstr(text, "did you mean MLCOMM_TIMEOUT_MS?"))
    fail_msg("no warning for MLCOMM_TIMOUT_MS in:\n%s", text);
  assert_null(strstr(text, "MLCOMM_DEBUG is not one")); /* known ones are quiet */
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(misspelled_variable_is_reported),
      cmocka_unit_test(rules_cover_kinds_and_ranges),
      cmocka_unit_test(bad_rules_are_named),
      cmocka_unit_test(builtin_tunes_parse),
      cmocka_unit_test(selection_follows_scores),
      cmocka_unit_test(forced_transport_and_fallback),
      cmocka_unit_test(nothing_left_is_refused),
      cmocka_unit_test(bad_tune_env_fails_init),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  MPI_Finalize();
  return failed;
}
