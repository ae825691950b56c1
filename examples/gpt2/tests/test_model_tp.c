/*
 * test_model_tp.c - tensor parallelism in the model library (gpt2_tp): ranks are threads
 * here, and the reduce and gather callbacks a barrier and a shared buffer, so the split
 * is tested without MPI.
 *  - a split over one rank gives the whole model's logits bit for bit (the hook adds
 *    nothing but the callbacks);
 *  - over 2, 3 and 6 ranks (the last rank's vocabulary block padded) every rank gets
 *    the same logits, equal to the whole model's to float rounding, and each rank holds
 *    1/N of every block's weights;
 *  - bad splits, mismatched caches, failing callbacks and the whole-model functions
 *    given a shard are refused with a sentence or an error code, never a crash.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gpt2.h"
#include "test_model_ref.h"

#define T 12        /* positions fed */
#define MAX_RANKS 6
#define SLOT 256    /* floats per rank in the shared buffer: >= C and >= vocab_stride */

static const gpt2_config cfg = {.max_seq_len = 16,
                                .vocab_size = 200,
                                .padded_vocab_size = 256,
                                .num_layers = 2,
                                .num_heads = 6,
                                .channels = 48};
static const int tokens[T] = {3, 199, 0, 67, 134, 66, 133, 198, 5, 101, 100, 7};

typedef struct {
  int n;
  pthread_barrier_t bar;
  float slots[MAX_RANKS * SLOT];
} world;

typedef struct {
  world *w;
  int rank;
  const gpt2_model *full;
  float *logits; /* (T, V) */
  int failed;
} rank_job;

/* every rank sums the slots in rank order, so all get the same bits, as mlcomm's do */
static int sim_reduce(void *ctx, float *buf, int n) {
  rank_job *j = ctx;
  memcpy(j->w->slots + j->rank * SLOT, buf, n * sizeof(float));
  pthread_barrier_wait(&j->w->bar);
  for (int i = 0; i < n; i++) {
    float s = 0.0f;
    for (int r = 0; r < j->w->n; r++) s += j->w->slots[r * SLOT + i];
    buf[i] = s;
  }
  pthread_barrier_wait(&j->w->bar);
  return 0;
}

static int sim_gather(void *ctx, const float *part, float *all, int n) {
  rank_job *j = ctx;
  memcpy(j->w->slots + j->rank * SLOT, part, n * sizeof(float));
  pthread_barrier_wait(&j->w->bar);
  for (int r = 0; r < j->w->n; r++)
    memcpy(all + (size_t)r * n, j->w->slots + r * SLOT, n * sizeof(float));
  pthread_barrier_wait(&j->w->bar);
  return 0;
}

static int sim_fail(void *ctx, float *buf, int n) {
  (void)ctx, (void)buf, (void)n;
  return -1;
}

static gpt2_model whole_model(void) {
  char err[256];
  gpt2_model m;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  m.params = malloc(m.layout.num_params * sizeof(float));
  gpt2_init_params(&m, 5);
  for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] += (float)(0.05 * ref_uniform());
  return m;
}

/* rank j->rank's shard of j->full, fed the tokens */
static void *run_rank(void *arg) {
  rank_job *j = arg;
  char err[256];
  gpt2_tp tp;
  gpt2_model m = {0};
  gpt2_kv *kv = NULL;
#ifdef _OPENMP
  omp_set_num_threads(1); /* the ranks are the parallelism */
#endif
  j->failed = 1;
  if (gpt2_tp_init(&tp, &cfg, j->rank, j->w->n, err, sizeof err) != 0) goto out;
  tp.reduce = sim_reduce, tp.gather = sim_gather, tp.ctx = j;
  if (gpt2_model_setup_tp(&m, &cfg, &tp, err, sizeof err) != 0) goto out;
  m.params = malloc(m.layout.num_params * sizeof(float));
  if (gpt2_tp_fill_params(&m, j->full, err, sizeof err) != 0 ||
      gpt2_kv_create_tp(&kv, &cfg, &tp, T, err, sizeof err) != 0)
    goto out;
  const size_t C = cfg.channels, N = j->w->n;
  EXPECT(m.layout.layer_size == 12 * C * C / N + 6 * C + 7 * C / N,
         "rank %d of %zu holds %zu floats a layer", j->rank, N, m.layout.layer_size);
  for (int t = 0; t < T; t++)
    if (gpt2_forward_token(&m, kv, tokens[t], j->logits + (size_t)t * cfg.vocab_size) != 0)
      goto out;
  j->failed = 0;
out:
  if (j->failed) fprintf(stderr, "rank %d of %d: %s\n", j->rank, j->w->n, err);
  gpt2_kv_free(kv);
  free(m.params);
  return NULL;
}

static float *whole_logits(const gpt2_model *m) {
  char err[256];
  gpt2_kv *kv;
  float *logits = malloc((size_t)T * cfg.vocab_size * sizeof(float));
  EXPECT(gpt2_kv_create(&kv, &cfg, T, err, sizeof err) == 0, "%s", err);
  for (int t = 0; t < T; t++) gpt2_forward_token(m, kv, tokens[t], logits + (size_t)t * cfg.vocab_size);
  gpt2_kv_free(kv);
  return logits;
}

static void test_split(const gpt2_model *full, const float *want, int n) {
  world w = {.n = n};
  pthread_barrier_init(&w.bar, NULL, (unsigned)n);
  rank_job jobs[MAX_RANKS];
  pthread_t th[MAX_RANKS];
  const size_t per = (size_t)T * cfg.vocab_size;
  for (int r = 0; r < n; r++) {
    jobs[r] = (rank_job){.w = &w, .rank = r, .full = full, .logits = malloc(per * sizeof(float))};
    pthread_create(&th[r], NULL, run_rank, &jobs[r]);
  }
  for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
  pthread_barrier_destroy(&w.bar);
  for (int r = 0; r < n; r++) EXPECT(!jobs[r].failed, "%d ranks: rank %d failed", n, r);
  if (n == 1) {
    EXPECT(memcmp(jobs[0].logits, want, per * sizeof(float)) == 0,
           "a split over one rank changed the whole model's logits");
  } else {
    double *ref = ref_dup(want, per);
    char what[64];
    snprintf(what, sizeof what, "logits over %d ranks", n);
    ref_compare(what, jobs[0].logits, ref, per, 2e-6);
    free(ref);
  }
  for (int r = 1; r < n; r++)
    EXPECT(memcmp(jobs[r].logits, jobs[0].logits, per * sizeof(float)) == 0,
           "%d ranks: rank %d's logits differ from rank 0's", n, r);
  for (int r = 0; r < n; r++) free(jobs[r].logits);
  printf("split over %d rank%s: logits as the whole model's\n", n, n > 1 ? "s" : "");
}

static void test_refusals(const gpt2_model *full) {
  char err[256] = "";
  gpt2_tp tp, bad;
  EXPECT(gpt2_tp_init(&tp, &cfg, 0, 4, err, sizeof err) != 0 && strstr(err, "head count (6)"),
         "6 heads split over 4 ranks: [%s]", err);
  EXPECT(gpt2_tp_init(&tp, &cfg, 2, 2, err, sizeof err) != 0 && strstr(err, "rank 2 of 2"),
         "rank 2 of 2 accepted: [%s]", err);
  EXPECT(gpt2_tp_init(&tp, &cfg, 0, 0, err, sizeof err) != 0, "0 ranks accepted");
  EXPECT(gpt2_tp_init(&tp, &cfg, 1, 2, err, sizeof err) == 0, "%s", err);
  gpt2_model m;
  EXPECT(gpt2_model_setup_tp(&m, &cfg, &tp, err, sizeof err) != 0 && strstr(err, "reduce"),
         "a split without callbacks accepted: [%s]", err);
  EXPECT(gpt2_model_setup_tp(&m, &cfg, NULL, err, sizeof err) != 0 && strstr(err, "NULL"),
         "a NULL split accepted: [%s]", err);
  bad = tp, bad.reduce = sim_fail, bad.gather = sim_gather, bad.heads = 2;
  EXPECT(gpt2_model_setup_tp(&m, &cfg, &bad, err, sizeof err) != 0 && strstr(err, "ranges"),
         "a split with other ranges accepted: [%s]", err);
  gpt2_kv *kv = NULL;
  EXPECT(gpt2_kv_create_tp(&kv, &cfg, &bad, T, err, sizeof err) != 0 && !kv,
         "a cache for a bad split made");

  /* one rank whose reduce fails: the forward says so and the cache keeps its length */
  EXPECT(gpt2_tp_init(&tp, &cfg, 0, 1, err, sizeof err) == 0, "%s", err);
  tp.reduce = sim_fail, tp.gather = sim_gather, tp.ctx = NULL;
  EXPECT(gpt2_model_setup_tp(&m, &cfg, &tp, err, sizeof err) == 0, "%s", err);
  m.params = malloc(m.layout.num_params * sizeof(float));
  EXPECT(gpt2_tp_fill_params(&m, full, err, sizeof err) == 0, "%s", err);
  EXPECT(gpt2_tp_fill_params(&m, &m, err, sizeof err) != 0, "a shard filled from a shard");
  float *logits = malloc(cfg.vocab_size * sizeof(float));
  logits[0] = 42.0f;
  EXPECT(gpt2_kv_create_tp(&kv, &cfg, &tp, T, err, sizeof err) == 0, "%s", err);
  EXPECT(gpt2_forward_token(&m, kv, 1, logits) != 0 && gpt2_kv_length(kv) == 0 && logits[0] == 42.0f,
         "a failing reduce was not reported");

  /* caches made for another split */
  gpt2_kv *whole_kv;
  EXPECT(gpt2_kv_create(&whole_kv, &cfg, T, err, sizeof err) == 0, "%s", err);
  EXPECT(gpt2_forward_token(&m, whole_kv, 1, logits) != 0, "a shard ran on a whole-model cache");
  EXPECT(gpt2_forward_token(full, kv, 1, logits) != 0, "the whole model ran on a shard's cache");
  EXPECT(gpt2_kv_length(whole_kv) == 0 && gpt2_kv_length(kv) == 0, "a refused token was cached");

  /* the whole-model functions refuse a shard */
  gpt2_acts *acts;
  int in[2] = {1, 2};
  EXPECT(gpt2_acts_create(&acts, &cfg, 1, 2, 1, err, sizeof err) == 0, "%s", err);
  EXPECT(isnan(gpt2_forward(&m, acts, in, in)), "gpt2_forward ran a shard");
  float *grads = malloc(m.layout.num_params * sizeof(float));
  EXPECT(gpt2_backward(&m, acts, grads, in, in, NULL) != 0, "gpt2_backward ran a shard");
  const char *path = "/tmp/gpt2-tp-test-never-written.bin";
  EXPECT(gpt2_checkpoint_write(path, &m, GPT2_CHECKPOINT_FP32, err, sizeof err) != 0 &&
             strstr(err, "shard"),
         "a shard written as a checkpoint: [%s]", err);
  EXPECT(gpt2_checkpoint_read_params(path, &m, err, sizeof err) != 0 && strstr(err, "shard"),
         "a checkpoint read into a shard: [%s]", err);
  printf("bad splits, mismatched caches, failing callbacks and whole-model calls refused\n");
  gpt2_acts_free(acts);
  gpt2_kv_free(kv), gpt2_kv_free(whole_kv);
  free(grads), free(logits), free(m.params);
}

int main(void) {
  gpt2_model full = whole_model();
  float *want = whole_logits(&full);
  const int splits[] = {1, 2, 3, 6};
  for (size_t i = 0; i < sizeof splits / sizeof *splits; i++) test_split(&full, want, splits[i]);
  test_refusals(&full);
  free(want), free(full.params);
  if (ref_failures) {
    fprintf(stderr, "%d check(s) failed\n", ref_failures);
    return 1;
  }
  printf("all tensor-parallel checks passed\n");
  return 0;
}
