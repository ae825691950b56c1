/*
 * test_model_ref.h - an independent double-precision GPT-2 for the model tests:
 * straightforward loops, no tiles, no threads. The float model is checked against it
 * (values), and its finite differences are the reference gradients.
 */
#ifndef GPT2_TEST_MODEL_REF_H
#define GPT2_TEST_MODEL_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"

static int ref_failures __attribute__((unused));

#define EXPECT(cond, ...)                                   \
  do {                                                      \
    if (!(cond)) {                                          \
      fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                         \
      fprintf(stderr, "\n");                                \
      ref_failures++;                                       \
    }                                                       \
  } while (0)

static uint64_t ref_rng = 0x12345678abcdefull;
static inline double ref_uniform(void) { /* [-1, 1) */
  ref_rng ^= ref_rng >> 12;
  ref_rng ^= ref_rng << 25;
  ref_rng ^= ref_rng >> 27;
  return (double)((ref_rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static inline void ref_fill(float *f, double *d, size_t n, double scale) {
  for (size_t i = 0; i < n; i++) {
    float v = (float)(scale * ref_uniform());
    if (f) f[i] = v;
    if (d) d[i] = v;
  }
}
static inline double *ref_dup(const float *f, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

/* Compares a float result with a double reference: the error relative to the
 * reference's largest magnitude must be below tol everywhere. */
static inline void ref_compare(const char *what, const float *got, const double *want, size_t n,
                               double tol) {
  double scale = 1e-30, worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]) / scale;
    if (e > worst) worst = e, at = i;
  }
  if (getenv("GPT2_TEST_VERBOSE"))
    printf("  %-48s error %.2e (tolerance %.0e)\n", what, worst, tol);
  EXPECT(worst <= tol, "%s: error %.3g (relative to max %.3g) at %zu: got %.9g want %.9g", what,
         worst, scale, at, n ? got[at] : 0.0, n ? want[at] : 0.0);
}

/* ---------------------------------------------------------------- layers, double */

static inline void ref_layernorm(double *out, const double *x, const double *w, const double *b,
                                 int N, int C) {
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    v /= C;
    double r = 1.0 / sqrt(v + 1e-5);
    for (int c = 0; c < C; c++) out[n * C + c] = (x[n * C + c] - m) * r * w[c] + b[c];
  }
}

static inline void ref_matmul(double *out, const double *x, const double *w, const double *b, int N,
                              int C, int OC) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b ? b[o] : 0.0;
      for (int c = 0; c < C; c++) s += x[(long)n * C + c] * w[(long)o * C + c];
      out[(long)n * OC + o] = s;
    }
}

static inline void ref_attention(double *out, const double *qkv, int B, int T, int C, int NH) {
  int hs = C / NH;
  double *p = malloc((size_t)T * sizeof(double));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const double *q = qkv + ((long)b * T + t) * 3 * C + h * hs;
        double mx = -1e300, sum = 0;
        for (int u = 0; u <= t; u++) {
          const double *k = qkv + ((long)b * T + u) * 3 * C + C + h * hs;
          double s = 0;
          for (int d = 0; d < hs; d++) s += q[d] * k[d];
          p[u] = s / sqrt((double)hs);
          mx = p[u] > mx ? p[u] : mx;
        }
        for (int u = 0; u <= t; u++) sum += p[u] = exp(p[u] - mx);
        double *y = out + ((long)b * T + t) * C + h * hs;
        for (int d = 0; d < hs; d++) {
          double s = 0;
          for (int u = 0; u <= t; u++)
            s += p[u] / sum * qkv[((long)b * T + u) * 3 * C + 2 * C + h * hs + d];
          y[d] = s;
        }
      }
  free(p);
}

static inline double ref_gelu(double x) {
  return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* Mean cross-entropy of logits (N,Vp) over the first V columns. */
static inline double ref_xent(const double *logits, const int *targets, int N, int V, int Vp) {
  double total = 0;
  for (int n = 0; n < N; n++) {
    const double *l = logits + (long)n * Vp;
    double mx = -1e300, sum = 0;
    for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
    total += log(sum) - (l[targets[n]] - mx);
  }
  return total / N;
}

/* The whole model in double, parameters in the float model's layer-major layout.
 * Returns the mean loss (targets) and, when probs is not NULL, the probabilities. */
static inline double ref_model_loss(const gpt2_model *m, const double *params, const int *inputs,
                                    const int *targets, int B, int T, double *probs) {
  const gpt2_config *cfg = &m->config;
  const gpt2_layout *lo = &m->layout;
  int C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, V = cfg->vocab_size;
  int Vp = cfg->padded_vocab_size, N = B * T;
  double *x = malloc((size_t)N * C * sizeof(double)), *xn = malloc((size_t)N * C * sizeof(double));
  double *qkv = malloc((size_t)N * 3 * C * sizeof(double)),
         *y = malloc((size_t)N * C * sizeof(double));
  double *h = malloc((size_t)N * 4 * C * sizeof(double)),
         *pr = malloc((size_t)N * C * sizeof(double));
  double *logits = malloc((size_t)N * Vp * sizeof(double));
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      x[n * C + c] =
          params[lo->wte + (size_t)inputs[n] * C + c] + params[lo->wpe + (size_t)(n % T) * C + c];
  for (int l = 0; l < L; l++) {
    const double *p = params + lo->layers + (size_t)l * lo->layer_size;
    ref_layernorm(xn, x, p + lo->ln1w, p + lo->ln1b, N, C);
    ref_matmul(qkv, xn, p + lo->qkvw, p + lo->qkvb, N, C, 3 * C);
    ref_attention(y, qkv, B, T, C, NH);
    ref_matmul(pr, y, p + lo->attprojw, p + lo->attprojb, N, C, C);
    for (int i = 0; i < N * C; i++) x[i] += pr[i];
    ref_layernorm(xn, x, p + lo->ln2w, p + lo->ln2b, N, C);
    ref_matmul(h, xn, p + lo->fcw, p + lo->fcb, N, C, 4 * C);
    for (int i = 0; i < N * 4 * C; i++) h[i] = ref_gelu(h[i]);
    ref_matmul(pr, h, p + lo->fcprojw, p + lo->fcprojb, N, 4 * C, C);
    for (int i = 0; i < N * C; i++) x[i] += pr[i];
  }
  ref_layernorm(xn, x, params + lo->lnfw, params + lo->lnfb, N, C);
  ref_matmul(logits, xn, params + lo->wte, NULL, N, C, Vp);
  double loss = targets ? ref_xent(logits, targets, N, V, Vp) : 0.0;
  if (probs) {
    for (int n = 0; n < N; n++) {
      double *l = logits + (long)n * Vp, mx = -1e300, sum = 0;
      for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
      for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
      for (int i = 0; i < Vp; i++) probs[(long)n * Vp + i] = i < V ? exp(l[i] - mx) / sum : 0.0;
    }
  }
  free(x), free(xn), free(qkv), free(y), free(h), free(pr), free(logits);
  return loss;
}

#endif /* GPT2_TEST_MODEL_REF_H */
