/*
 * test_model_infer.c - inference and determinism:
 *  - the KV-cache single-position forward gives the whole-sequence forward's
 *    probabilities, position by position, and refuses a full cache or a bad token;
 *  - the whole-sequence probabilities match the double-precision reference;
 *  - forward and backward give the same bits with 1, 2 and 3 OpenMP threads;
 *  - sampling picks the arg max at temperature 0 and follows the distribution otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gpt2.h"
#include "test_model_ref.h"

static gpt2_model make_model(gpt2_config cfg, uint64_t seed) {
  char err[256];
  gpt2_model m;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    exit(1);
  }
  m.params = malloc(m.layout.num_params * 4);
  gpt2_init_params(&m, seed);
  for (size_t i = 0; i < m.layout.num_params; i++) m.params[i] += (float)(0.05 * ref_uniform());
  return m;
}

static void test_kv_cache(void) {
  gpt2_config cfg = {.max_seq_len = 16,
                     .vocab_size = 200,
                     .padded_vocab_size = 256,
                     .num_layers = 2,
                     .num_heads = 4,
                     .channels = 32};
  gpt2_model m = make_model(cfg, 3);
  const int T = 11, V = cfg.vocab_size, Vp = cfg.padded_vocab_size;
  int tokens[11];
  for (int t = 0; t < T; t++) tokens[t] = (t * 37 + 5) % V;
  char err[256];
  gpt2_acts *a;
  EXPECT(gpt2_acts_create(&a, &cfg, 1, T, 0, err, sizeof err) == 0, "%s", err);
  gpt2_forward(&m, a, tokens, NULL);
  const float *probs = gpt2_probs(a);
  EXPECT(probs != NULL, "no probabilities after a forward without targets");

  double *params = ref_dup(m.params, m.layout.num_params), *want = malloc((size_t)T * Vp * 8);
  ref_model_loss(&m, params, tokens, NULL, 1, T, want);
  ref_compare("whole-sequence probabilities vs double reference", probs, want, (size_t)T * Vp,
              1e-5);

  gpt2_kv *kv;
  EXPECT(gpt2_kv_create(&kv, &cfg, T, err, sizeof err) == 0, "%s", err);
  float *logits = malloc(V * 4), *p = malloc(V * 4);
  for (int round = 0; round < 2; round++) { /* a reset cache serves again */
    gpt2_kv_reset(kv);
    for (int t = 0; t < T; t++) {
      EXPECT(gpt2_forward_token(&m, kv, tokens[t], logits) == 0, "position %d refused", t);
      float mx = logits[0], s = 0;
      for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
      for (int i = 0; i < V; i++) s += p[i] = expf(logits[i] - mx);
      double worst = 0;
      for (int i = 0; i < V; i++) {
        double e = fabs(p[i] / s - probs[(long)t * Vp + i]);
        worst = e > worst ? e : worst;
      }
      EXPECT(worst < 1e-6, "position %d: KV-cache probabilities differ by %.3g", t, worst);
    }
    EXPECT(gpt2_kv_length(kv) == T, "cache length %d", gpt2_kv_length(kv));
  }
  EXPECT(gpt2_forward_token(&m, kv, tokens[0], logits) != 0, "a full cache accepted a token");
  gpt2_kv_reset(kv);
  EXPECT(gpt2_forward_token(&m, kv, V, logits) != 0, "token V accepted");
  EXPECT(gpt2_forward_token(&m, kv, -1, logits) != 0, "token -1 accepted");
  gpt2_kv_free(kv);
  gpt2_kv *too_long = NULL;
  EXPECT(gpt2_kv_create(&too_long, &cfg, cfg.max_seq_len + 1, err, sizeof err) != 0 && !too_long,
         "a cache longer than maxT accepted");
  gpt2_acts_free(a);
  free(params), free(want), free(logits), free(p), free(m.params);
}

static void test_thread_independence(void) {
#ifdef _OPENMP
  gpt2_config cfg = {.max_seq_len = 32,
                     .vocab_size = 1000,
                     .padded_vocab_size = 1024,
                     .num_layers = 2,
                     .num_heads = 2,
                     .channels = 64};
  gpt2_model m = make_model(cfg, 9);
  const int B = 3, T = 24;
  int inputs[72], targets[72];
  for (int i = 0; i < B * T; i++) inputs[i] = (i * 101) % 1000, targets[i] = (i * 37 + 1) % 1000;
  size_t n = m.layout.num_params;
  float *g1 = malloc(n * 4), *g = malloc(n * 4);
  char err[256];
  gpt2_acts *a;
  EXPECT(gpt2_acts_create(&a, &cfg, B, T, 1, err, sizeof err) == 0, "%s", err);
  float loss1 = 0;
  for (int threads = 1; threads <= 3; threads++) {
    omp_set_num_threads(threads);
    float loss = gpt2_forward(&m, a, inputs, targets);
    gpt2_backward(&m, a, threads == 1 ? g1 : g, inputs, targets, NULL);
    if (threads == 1) {
      loss1 = loss;
      continue;
    }
    EXPECT(memcmp(&loss, &loss1, 4) == 0, "%d threads: loss %.9g, 1 thread %.9g", threads, loss,
           loss1);
    EXPECT(memcmp(g, g1, n * 4) == 0, "%d threads: gradients differ from 1 thread", threads);
  }
  printf("forward and backward: same bits with 1, 2 and 3 threads\n");
  gpt2_acts_free(a);
  free(g1), free(g), free(m.params);
#endif
}

static void test_sample(void) {
  float logits[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
  EXPECT(gpt2_sample(logits, 5, 0.0f, 0.99f) == 1, "temperature 0 is not the arg max");
  int counts[5] = {0};
  for (int i = 0; i < 10000; i++) counts[gpt2_sample(logits, 5, 1.0f, (i + 0.5f) / 10000)]++;
  double z = 0;
  for (int i = 0; i < 5; i++) z += exp(logits[i]);
  for (int i = 0; i < 5; i++)
    EXPECT(fabs(counts[i] / 10000.0 - exp(logits[i]) / z) < 2e-3, "token %d sampled %d times", i,
           counts[i]);
}

int main(void) {
  test_kv_cache();
  test_thread_independence();
  test_sample();
  if (ref_failures) {
    fprintf(stderr, "%d checks failed\n", ref_failures);
    return 1;
  }
  printf("inference tests passed\n");
  return 0;
}
