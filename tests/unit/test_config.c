/* Config resolution and MLCOMM_* environment parsing (src/core/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/internal.h"

static int clear_env(void **state) {
  (void)state;
  const char *vars[] = {"MLCOMM_TRANSPORT", "MLCOMM_TIMEOUT_MS", "MLCOMM_DEBUG",
                        "MLCOMM_MPI_RING_BYTES", "MLCOMM_MPI_CHUNK_ELEMS", "MLCOMM_DIAG_MS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  return 0;
}

static void defaults_without_env(void **state) {
  (void)state;
  mlcommConfig_t out;
  assert_int_equal(mlcomm_config_resolve(NULL, NULL, &out), mlcommSuccess);
  assert_int_equal(out.transport, mlcommTransportAuto);
  assert_int_equal(out.timeoutMs, 300000);
  assert_int_equal(out.debugLevel, 0);
  assert_int_equal(out.magic, MLCOMM_CONFIG_MAGIC);
}

static void env_fills_unset_fields(void **state) {
  (void)state;
  setenv("MLCOMM_TRANSPORT", "MPI", 1);
  setenv("MLCOMM_TIMEOUT_MS", "1234", 1);
  setenv("MLCOMM_DEBUG", "info", 1);
  mlcommConfig_t out;
  assert_int_equal(mlcomm_config_resolve(NULL, NULL, &out), mlcommSuccess);
  assert_int_equal(out.transport, mlcommTransportMpi);
  assert_int_equal(out.timeoutMs, 1234);
  assert_int_equal(out.debugLevel, 2);
}

static void explicit_field_beats_env(void **state) {
  (void)state;
  setenv("MLCOMM_TIMEOUT_MS", "1234", 1);
  setenv("MLCOMM_TRANSPORT", "shm", 1);
  mlcommConfig_t user = MLCOMM_CONFIG_INITIALIZER, out;
  user.timeoutMs = 77;
  assert_int_equal(mlcomm_config_resolve(&user, NULL, &out), mlcommSuccess);
  assert_int_equal(out.timeoutMs, 77);
  assert_int_equal(out.transport, mlcommTransportShm); /* unset field: from env */
}

static void bad_env_values_are_named(void **state) {
  (void)state;
  mlcommConfig_t out;
  const char *cases[][2] = {{"MLCOMM_TIMEOUT_MS", "soon"}, {"MLCOMM_TIMEOUT_MS", "-5"},
                            {"MLCOMM_TIMEOUT_MS", "12x"}, {"MLCOMM_TRANSPORT", "carrier-pigeon"},
                            {"MLCOMM_DEBUG", "9"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    clear_env(NULL);
    setenv(cases[i][0], cases[i][1], 1);
    assert_int_equal(mlcomm_config_resolve(NULL, NULL, &out), mlcommInvalidArgument);
    const char *msg = mlcommGetLastError(NULL);
    assert_non_null(strstr(msg, cases[i][0]));
    assert_non_null(strstr(msg, cases[i][1]));
  }
}

static void bad_config_fields(void **state) {
  (void)state;
  mlcommConfig_t out;
  mlcommConfig_t c = MLCOMM_CONFIG_INITIALIZER;
  c.magic = 1;
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "magic"));
  c = (mlcommConfig_t)MLCOMM_CONFIG_INITIALIZER;
  c.size = 3;
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "size"));
  c = (mlcommConfig_t)MLCOMM_CONFIG_INITIALIZER;
  c.transport = 99;
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "transport"));
  c = (mlcommConfig_t)MLCOMM_CONFIG_INITIALIZER;
  c.timeoutMs = -1;
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "timeoutMs"));
  c = (mlcommConfig_t)MLCOMM_CONFIG_INITIALIZER;
  c.debugLevel = 4;
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "debugLevel"));
}

static void older_smaller_struct_reads_only_its_fields(void **state) {
  (void)state;
  /* A caller compiled when the struct ended at timeoutMs: debugLevel must not be read. */
  mlcommConfig_t c = MLCOMM_CONFIG_INITIALIZER, out;
  c.size = offsetof(mlcommConfig_t, debugLevel);
  c.timeoutMs = 5;
  c.debugLevel = 12345; /* garbage beyond the caller's struct */
  assert_int_equal(mlcomm_config_resolve(&c, NULL, &out), mlcommSuccess);
  assert_int_equal(out.timeoutMs, 5);
  assert_int_equal(out.debugLevel, 0);
}

static void inherit_ignores_env(void **state) {
  (void)state;
  mlcommConfig_t parent, out;
  assert_int_equal(mlcomm_config_resolve(NULL, NULL, &parent), mlcommSuccess);
  parent.timeoutMs = 42;
  setenv("MLCOMM_TIMEOUT_MS", "1000", 1);
  assert_int_equal(mlcomm_config_resolve(NULL, &parent, &out), mlcommSuccess);
  assert_int_equal(out.timeoutMs, 42);
}

static void tuning_defaults_and_overrides(void **state) {
  (void)state;
  struct mlcomm_tuning t;
  assert_int_equal(mlcomm_tuning_read(&t), mlcommSuccess);
  assert_int_equal(t.mpi_chunk_elems, 2147483647);
  assert_int_equal(t.diag_ms, 1000);
  setenv("MLCOMM_MPI_CHUNK_ELEMS", "1000", 1);
  setenv("MLCOMM_MPI_RING_BYTES", "-1", 1);
  assert_int_equal(mlcomm_tuning_read(&t), mlcommSuccess);
  assert_int_equal(t.mpi_chunk_elems, 1000);
  assert_int_equal(t.mpi_ring_bytes, -1);
  setenv("MLCOMM_MPI_CHUNK_ELEMS", "0", 1);
  assert_int_equal(mlcomm_tuning_read(&t), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "MLCOMM_MPI_CHUNK_ELEMS"));
}

static void transport_names_round_trip(void **state) {
  (void)state;
  for (int t = 0; t < mlcommNumTransports; t++)
    assert_int_equal(mlcomm_transport_from_name(mlcomm_transport_name(t)), t);
  assert_int_equal(mlcomm_transport_from_name("tcp"), -1);
  assert_int_equal(mlcomm_transport_from_name(NULL), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(defaults_without_env, clear_env),
      cmocka_unit_test_setup(env_fills_unset_fields, clear_env),
      cmocka_unit_test_setup(explicit_field_beats_env, clear_env),
      cmocka_unit_test_setup(bad_env_values_are_named, clear_env),
      cmocka_unit_test_setup(bad_config_fields, clear_env),
      cmocka_unit_test_setup(older_smaller_struct_reads_only_its_fields, clear_env),
      cmocka_unit_test_setup(inherit_ignores_env, clear_env),
      cmocka_unit_test_setup(tuning_defaults_and_overrides, clear_env),
      cmocka_unit_test_setup(transport_names_round_trip, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
