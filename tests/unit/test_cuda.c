/*
 * The CUDA check and the staging copies of src/core/cuda.c. The check's sentence,
 * trail and error clearing need no GPU; the copies run where a device is usable (the
 * fakegpu suite runs this test with tests/fakecuda preloaded) and are skipped
 * otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/cuda.h"

static cudaError_t returns(cudaError_t e) { return e; }

static int reached;

static mlcommResult_t checked(struct mlcomm_comm *comm, const struct mlcomm_op *op,
                              cudaError_t e) {
  reached = 0;
  MLCOMM_CUDA_CHECK(comm, op, returns(e));
  reached = 1;
  return mlcommSuccess;
}

static struct mlcomm_comm *fresh_comm(void) {
  static struct mlcomm_comm comm;
  memset(&comm, 0, sizeof comm);
  return &comm;
}

static void failure_names_op_seq_and_function(void **state) {
  (void)state;
  struct mlcomm_comm *comm = fresh_comm();
  struct mlcomm_op op = {.kind = MLCOMM_OP_ALLREDUCE, .seq = 7};
  assert_int_equal(checked(comm, &op, cudaErrorInvalidValue), mlcommInternalError);
  assert_int_equal(reached, 0);
  char want[512];
  snprintf(want, sizeof want, "mlcommAllReduce (seq 7): returns failed: %s",
           cudaGetErrorString(cudaErrorInvalidValue));
  assert_string_equal(comm->last_error, want);
  assert_string_equal(mlcommGetLastError(NULL), want);
}

static void failure_outside_a_call_has_no_prefix(void **state) {
  (void)state;
  struct mlcomm_comm *comm = fresh_comm();
  assert_int_equal(checked(comm, NULL, cudaErrorMemoryAllocation), mlcommInternalError);
  char want[512];
  snprintf(want, sizeof want, "returns failed: %s", cudaGetErrorString(cudaErrorMemoryAllocation));
  assert_string_equal(comm->last_error, want);
}

static void success_passes_and_records_nothing(void **state) {
  (void)state;
  struct mlcomm_comm *comm = fresh_comm();
  struct mlcomm_op op = {.kind = MLCOMM_OP_BROADCAST, .seq = 3};
  assert_int_equal(checked(comm, &op, cudaSuccess), mlcommSuccess);
  assert_int_equal(reached, 1);
  assert_string_equal(comm->last_error, "");
  assert_int_equal(MLCOMM_CUDA_RESULT(comm, &op, returns(cudaSuccess)), mlcommSuccess);
  assert_int_equal(MLCOMM_CUDA_RESULT(comm, &op, returns(cudaErrorNotReady)), mlcommInternalError);
  assert_non_null(strstr(comm->last_error, "mlcommBroadcast (seq 3): returns failed: "));
}

/* At info level the failing line is in the log, with the whole call and the error's
 * name, as MLCOMM_CHECK leaves it. */
static void failure_leaves_file_line_trail(void **state) {
  (void)state;
  FILE *log = tmpfile();
  assert_non_null(log);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(log), 2) >= 0);
  mlcomm_set_debug_level(MLCOMM_LOG_INFO);
  int line = __LINE__ + 1;
  mlcommResult_t r = MLCOMM_CUDA_RESULT(fresh_comm(), NULL, returns(cudaErrorInvalidDevice));
  mlcomm_set_debug_level(0);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_int_equal(r, mlcommInternalError);
  char text[4096] = "";
  rewind(log);
  size_t n = fread(text, 1, sizeof text - 1, log);
  text[n] = '\0';
  fclose(log);
  char want[128];
  snprintf(want, sizeof want, "INFO test_cuda.c:%d returns(cudaErrorInvalidDevice) -> %s", line,
           cudaGetErrorName(cudaErrorInvalidDevice));
  if (strstr(text, want) == NULL) fail_msg("no '%s' in the log:\n%s", want, text);
}

static void copy_kinds(void **state) {
  (void)state;
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_PINNED, MLCOMM_MEM_DEVICE), cudaMemcpyDeviceToHost);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_HOST, MLCOMM_MEM_DEVICE), cudaMemcpyDeviceToHost);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_DEVICE, MLCOMM_MEM_PINNED), cudaMemcpyHostToDevice);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_DEVICE, MLCOMM_MEM_DEVICE), cudaMemcpyDeviceToDevice);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_HOST, MLCOMM_MEM_PINNED), cudaMemcpyHostToHost);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_HOST, MLCOMM_MEM_MANAGED), cudaMemcpyDefault);
  assert_int_equal(mlcomm_cuda_copy_kind(MLCOMM_MEM_MANAGED, MLCOMM_MEM_DEVICE), cudaMemcpyDefault);
}

static bool have_device(void) {
  int n = 0;
  bool ok = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  cudaGetLastError();
  return ok;
}

/* tests/fakecuda's error strings say who spoke; it checks copy bounds at enqueue,
 * where a real GPU may fault later instead. */
static bool fake_gpu(void) {
  return strncmp(cudaGetErrorString(cudaErrorInvalidValue), "fakegpu: ", 9) == 0;
}

static void wait_event(struct mlcomm_comm *comm, void *event) {
  bool done = false;
  for (long i = 0; i < 10000000 && !done; i++)
    assert_int_equal(mlcomm_cuda_event_done(comm, NULL, event, &done), mlcommSuccess);
  assert_true(done);
}

/* Host -> device -> host with the asynchronous copy and one event reused for both,
 * then with the synchronous one. */
static void copies_round_trip(void **state) {
  (void)state;
  if (!have_device()) skip();
  struct mlcomm_comm *comm = fresh_comm();
  enum { N = 4099 };
  unsigned char *src = malloc(N), *back = malloc(N), *back2 = malloc(N);
  void *dev = NULL;
  assert_true(src && back && back2);
  assert_int_equal(cudaMalloc(&dev, N), cudaSuccess);
  for (int i = 0; i < N; i++) src[i] = (unsigned char)(i * 7 + 1);
  memset(back, 0, N), memset(back2, 0, N);
  void *event = NULL;
  assert_int_equal(mlcomm_cuda_copy_async(comm, NULL, dev, MLCOMM_MEM_DEVICE, src, MLCOMM_MEM_HOST,
                                          N, &event),
                   mlcommSuccess);
  assert_non_null(event);
  void *first = event;
  wait_event(comm, event);
  assert_int_equal(mlcomm_cuda_copy_async(comm, NULL, back, MLCOMM_MEM_HOST, dev, MLCOMM_MEM_DEVICE,
                                          N, &event),
                   mlcommSuccess);
  assert_ptr_equal(event, first);
  wait_event(comm, event);
  assert_memory_equal(back, src, N);
  /* Nothing to copy still records the event, so that "done" means "ordered after". */
  assert_int_equal(mlcomm_cuda_copy_async(comm, NULL, NULL, MLCOMM_MEM_HOST, NULL,
                                          MLCOMM_MEM_DEVICE, 0, &event),
                   mlcommSuccess);
  mlcomm_cuda_event_free(&event, true);
  assert_null(event);
  assert_int_equal(mlcomm_cuda_copy_sync(comm, NULL, back2, MLCOMM_MEM_HOST, dev,
                                         MLCOMM_MEM_DEVICE, N),
                   mlcommSuccess);
  assert_memory_equal(back2, src, N);
  assert_string_equal(comm->last_error, "");
  cudaFree(dev);
  free(src), free(back), free(back2);
}

static void failed_copy_is_reported_and_cleared(void **state) {
  (void)state;
  if (!have_device() || !fake_gpu()) skip();
  struct mlcomm_comm *comm = fresh_comm();
  struct mlcomm_op op = {.kind = MLCOMM_OP_REDUCESCATTER, .seq = 12};
  void *dev = NULL, *event = NULL;
  char host[256];
  assert_int_equal(cudaMalloc(&dev, 64), cudaSuccess);
  assert_int_equal(mlcomm_cuda_copy_async(comm, &op, host, MLCOMM_MEM_HOST, dev, MLCOMM_MEM_DEVICE,
                                          sizeof host, &event),
                   mlcommInternalError);
  assert_non_null(strstr(comm->last_error, "mlcommReduceScatter (seq 12): cudaMemcpyAsync failed: "
                                           "fakegpu: "));
  assert_int_equal(cudaGetLastError(), cudaSuccess);
  assert_int_equal(mlcomm_cuda_copy_sync(comm, &op, host, MLCOMM_MEM_HOST, dev, MLCOMM_MEM_DEVICE,
                                         sizeof host),
                   mlcommInternalError);
  assert_int_equal(cudaGetLastError(), cudaSuccess);
  mlcomm_cuda_event_free(&event, false);
  cudaFree(dev);
}

/* An invalid device ordinal is a non-sticky error: after the check the next
 * cudaGetLastError must not see it. */
static void non_sticky_error_is_cleared(void **state) {
  (void)state;
  if (!have_device()) skip();
  int n = 0;
  cudaGetDeviceCount(&n);
  struct mlcomm_comm *comm = fresh_comm();
  assert_int_equal(MLCOMM_CUDA_RESULT(comm, NULL, cudaSetDevice(n + 3)), mlcommInternalError);
  assert_non_null(strstr(comm->last_error, "cudaSetDevice failed: "));
  assert_int_equal(cudaGetLastError(), cudaSuccess);
  assert_int_equal(cudaSetDevice(0), cudaSuccess);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(failure_names_op_seq_and_function),
      cmocka_unit_test(failure_outside_a_call_has_no_prefix),
      cmocka_unit_test(success_passes_and_records_nothing),
      cmocka_unit_test(failure_leaves_file_line_trail),
      cmocka_unit_test(copy_kinds),
      cmocka_unit_test(copies_round_trip),
      cmocka_unit_test(failed_copy_is_reported_and_cleared),
      cmocka_unit_test(non_sticky_error_is_cleared),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
