/* Config resolution and MLCOMM_* environment parsing (src/core/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/internal.h"
#include "core/params.h"

MLCOMM_PARAM_EXTERN(MpiChunkElems);
MLCOMM_PARAM_EXTERN(MpiRingBytes);
MLCOMM_PARAM_EXTERN(DiagMs);
MLCOMM_PARAM_EXTERN(ShmSlots);

static int clear_env(void **state) {
  (void)state;
  const char *vars[] = {"MLCOMM_TRANSPORT", "MLCOMM_TIMEOUT_MS", "MLCOMM_DEBUG",
                        "MLCOMM_MPI_RING_BYTES", "MLCOMM_MPI_CHUNK_ELEMS", "MLCOMM_DIAG_MS",
                        "MLCOMM_SHM_SLOTS"};
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

/* Variables declared by the transports beside their code are read with the core's. */
static void tuning_defaults_and_overrides(void **state) {
  (void)state;
  int64_t *v = NULL;
  assert_int_equal(mlcomm_params_read(&v), mlcommSuccess);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_MpiChunkElems), 2147483647);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_DiagMs), 1000);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_ShmSlots), 4);
  free(v);
  setenv("MLCOMM_MPI_CHUNK_ELEMS", "1000", 1);
  setenv("MLCOMM_MPI_RING_BYTES", "-1", 1);
  setenv("MLCOMM_SHM_SLOTS", " 8", 1);
  assert_int_equal(mlcomm_params_read(&v), mlcommSuccess);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_MpiChunkElems), 1000);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_MpiRingBytes), -1);
  assert_int_equal(mlcomm_param_at(v, &mlcomm_param_ShmSlots), 8);
  free(v);
  setenv("MLCOMM_MPI_CHUNK_ELEMS", "0", 1);
  assert_int_equal(mlcomm_params_read(&v), mlcommInvalidArgument);
  assert_null(v);
  assert_non_null(strstr(mlcommGetLastError(NULL), "MLCOMM_MPI_CHUNK_ELEMS='0'"));
  assert_non_null(strstr(mlcommGetLastError(NULL), "[1, 2147483647]"));
  setenv("MLCOMM_MPI_CHUNK_ELEMS", "1000", 1);
  setenv("MLCOMM_SHM_SLOTS", "65", 1);
  assert_int_equal(mlcomm_params_read(&v), mlcommInvalidArgument);
  assert_non_null(strstr(mlcommGetLastError(NULL), "MLCOMM_SHM_SLOTS='65'"));
}

/* One parser for MLCOMM_DEBUG: names and numbers, and an error listing both. */
static void debug_names_and_numbers(void **state) {
  (void)state;
  const char *ok[][2] = {{"NONE", "0"}, {"warn", "1"}, {"Info", "2"}, {"TRACE", "3"},
                         {"0", "0"}, {"3", "3"}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    setenv("MLCOMM_DEBUG", ok[i][0], 1);
    mlcommConfig_t out;
    assert_int_equal(mlcomm_config_resolve(NULL, NULL, &out), mlcommSuccess);
    assert_int_equal(out.debugLevel, atoi(ok[i][1]));
    assert_int_equal(mlcomm_debug_from_env(), atoi(ok[i][1]));
  }
  const char *bad[] = {"4", "-1", "verbose", "2x", "INFOS"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("MLCOMM_DEBUG", bad[i], 1);
    mlcommConfig_t out;
    assert_int_equal(mlcomm_config_resolve(NULL, NULL, &out), mlcommInvalidArgument);
    const char *msg = mlcommGetLastError(NULL);
    assert_non_null(strstr(msg, "one of NONE, WARN, INFO, TRACE or an integer in [0, 3]"));
    assert_int_equal(mlcomm_debug_from_env(), 0); /* the lazy reader stays quiet */
  }
}

/* A misspelled variable is recognised as unknown; every declared one is known. */
static void unknown_variables_are_recognised(void **state) {
  (void)state;
  const char *known[] = {"MLCOMM_TIMEOUT_MS", "MLCOMM_DEBUG", "MLCOMM_TRANSPORT",
                         "MLCOMM_DIAG_MS", "MLCOMM_SHM_SLICE_BYTES", "MLCOMM_MPI_STAGE_SLOTS",
                         "MLCOMM_SHM_TUNE", "MLCOMM_MPI_TUNE", "MLCOMM_LIBRARY"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    assert_true(mlcomm_param_known(known[i]));
  const char *unknown[] = {"MLCOMM_TIMOUT_MS", "MLCOMM_SHM_SLICE", "MLCOMM_", "MLCOMM_TUNE"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
    assert_false(mlcomm_param_known(unknown[i]));
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
      cmocka_unit_test_setup(debug_names_and_numbers, clear_env),
      cmocka_unit_test_setup(unknown_variables_are_recognised, clear_env),
      cmocka_unit_test_setup(transport_names_round_trip, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
