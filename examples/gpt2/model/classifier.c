/*
 * classifier.c - the tied output head fused with softmax and cross-entropy.
 *
 * With a 50k vocabulary this is most of a small model's arithmetic: at N = B*T = 256
 * rows and C = 128, three (N,C)x(C,V) products of 3.3 GFLOP each, against 1.2 GFLOP
 * for four transformer layers. Stored row by row, its (N, Vp) logits are 51 MB that
 * the plain way writes in one product and reads back in softmax, loss gradient and
 * two more products, so memory traffic rather than arithmetic sets its pace. Here:
 *
 *  forward   columns [0, V) are cut into G fixed groups of blocks of BLOCK_COLS
 *            vocabulary entries. A block's logits are computed transposed,
 *            l[o][n] = wte[o] . x[n] (the tile broadcasts wte's rows and loads rows of
 *            x^T, packed once), so each row n's softmax statistics - a running max
 *            and sum of exponentials per group - are column operations, vectorised
 *            across rows. The groups are combined in order. Out: losses and each row's
 *            log-sum-exp (lse). For training the block is stored for backward, each
 *            block a contiguous (width, N) slab.
 *  backward  each slab is turned in place into dlogits = (e^(logit - lse) - onehot)
 *            * dloss; while it is in cache it gives that block's rows of dwte
 *            (dlogits x: no other group writes them) and the group's partial
 *            dx (dlogits^T wte_block). The G partials are summed in order at the end.
 *
 * Each logit is written once and read once, in order; every product runs on operands
 * in cache and nothing is packed but x^T. G depends on N and C only, so results do
 * not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "layers.h"

#define BLOCK_COLS 256            /* vocabulary entries per block */
#define CHUNK_ROWS 256            /* rows (positions) per pass over a block */
#define MAX_GROUPS 32             /* at most this many partial sums */
#define PARTIAL_BUDGET (32 << 20) /* bytes for backward's partial dx */
/* x^T's row stride: N plus a cache line, so that the C rows a tile walks down do not
 * all fall in the same few L1 sets (at N = 256 they would be 1 KB apart: 4 sets). */
#define XT_LD(N) ((long)(N) + 16)

static int num_groups(int N, int C) {
  size_t per = (size_t)N * C * sizeof(float);
  size_t g = PARTIAL_BUDGET / (per ? per : 1);
  return g < 1 ? 1 : g > MAX_GROUPS ? MAX_GROUPS : (int)g;
}

size_t gpt2_classifier_scratch(int N, int C) {
  size_t G = (size_t)num_groups(N, C);
  size_t fwd = G * N * 2 + N + (size_t)XT_LD(N) * C, bwd = G * N * C;
  return fwd > bwd ? fwd : bwd;
}

/* Group g's vocabulary range, split evenly in whole blocks of 16 entries. */
static void group_cols(int g, int G, int V, int *c0, int *c1) {
  long units = (V + 15) / 16;
  *c0 = (int)(units * g / G) * 16;
  *c1 = (int)(units * (g + 1) / G) * 16;
  if (*c1 > V) *c1 = V;
  if (*c0 > V) *c0 = V;
}

/* l[o][n - r0] = wte[b0 + o] . x[n] for o < width, n in [r0, r1); l has row stride ld.
 * xt is x^T (C rows of stride XT_LD(N)). */
static void block_logits(const gpt2_kernels *kr, float *l, long ld, const float *xt, int N,
                         const float *wte, int b0, int width, int r0, int r1, int C) {
  const long xld = XT_LD(N);
  const int nrw = kr->nrw, mr = kr->mr;
  for (int n0 = r0; n0 < r1; n0 += nrw) {
    int n = r1 - n0 < nrw ? r1 - n0 : nrw;
    for (int o = 0; o < width; o += mr) {
      int m = width - o < mr ? width - o : mr;
      const float *a = wte + (long)(b0 + o) * C;
      float *c = l + (long)o * ld + (n0 - r0);
      if (n == nrw)
        kr->tile(m, C, a, C, 1, xt + n0, xld, c, ld, 0, NULL);
      else
        kr->tile_edge(m, n, C, a, C, 1, xt + n0, xld, c, ld, 0, NULL);
    }
  }
}

void gpt2_classifier_forward(float *losses, float *lse, float *logits, float *scratch,
                             const float *x, const float *wte, const int *targets, int N, int C,
                             int V) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int G = num_groups(N, C);
  float *gmax = scratch, *gsum = gmax + (size_t)G * N, *tlogit = gsum + (size_t)G * N;
  float *xt = tlogit + N; /* (C, N), row stride XT_LD(N) */
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; c++)
    for (int n = 0; n < N; n++) xt[(long)c * XT_LD(N) + n] = x[(long)n * C + c];
#pragma omp parallel
  {
    float *buf = logits ? NULL : malloc((size_t)BLOCK_COLS * CHUNK_ROWS * sizeof(float));
#pragma omp for schedule(static)
    for (int g = 0; g < G; g++) {
      int c0, c1;
      group_cols(g, G, V, &c0, &c1);
      float *m = gmax + (size_t)g * N, *s = gsum + (size_t)g * N;
      for (int n = 0; n < N; n++) m[n] = -INFINITY, s[n] = 0.0f;
      for (int b0 = c0; b0 < c1; b0 += BLOCK_COLS) {
        int width = c1 - b0 < BLOCK_COLS ? c1 - b0 : BLOCK_COLS;
        for (int r0 = 0; r0 < N; r0 += CHUNK_ROWS) {
          int r1 = r0 + CHUNK_ROWS < N ? r0 + CHUNK_ROWS : N;
          /* stored: the block's slab (width, N); else this chunk alone (width, rows) */
          long ld = logits ? N : r1 - r0;
          float *l = logits ? logits + (long)b0 * N + r0 : buf;
          block_logits(kr, l, ld, xt, N, wte, b0, width, r0, r1, C);
          kr->col_softmax_stats(m + r0, s + r0, l, ld, width, r1 - r0);
          for (int n = r0; n < r1; n++) {
            int t = targets[n];
            if (t >= b0 && t < b0 + width) tlogit[n] = l[(long)(t - b0) * ld + (n - r0)];
          }
        }
      }
    }
    free(buf);
  }
  for (int n = 0; n < N; n++) {
    float mx = -INFINITY;
    for (int g = 0; g < G; g++) mx = gmax[(size_t)g * N + n] > mx ? gmax[(size_t)g * N + n] : mx;
    double s = 0.0;
    for (int g = 0; g < G; g++)
      if (gsum[(size_t)g * N + n] > 0.0f)
        s += gsum[(size_t)g * N + n] * exp(gmax[(size_t)g * N + n] - mx);
    lse[n] = mx + (float)log(s);
    losses[n] = lse[n] - tlogit[n];
  }
}

void gpt2_classifier_backward(float *dx, float *dwte, float *logits, float *scratch, const float *x,
                              const float *wte, const float *lse, const int *targets, float dloss,
                              int N, int C, int V, int Vp) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int G = num_groups(N, C), nrw = kr->nrw, mr = kr->mr;
  float *partial = scratch; /* (G, N, C) */
  memset(dwte + (size_t)V * C, 0, (size_t)(Vp - V) * C * sizeof(float));
#pragma omp parallel for schedule(static)
  for (int g = 0; g < G; g++) {
    int c0, c1;
    group_cols(g, G, V, &c0, &c1);
    float *dxg = partial + (size_t)g * N * C;
    if (c0 == c1) memset(dxg, 0, (size_t)N * C * sizeof(float));
    for (int b0 = c0; b0 < c1; b0 += BLOCK_COLS) {
      int width = c1 - b0 < BLOCK_COLS ? c1 - b0 : BLOCK_COLS;
      float *l = logits + (long)b0 * N; /* (width, N) */
      for (int r0 = 0; r0 < N; r0 += CHUNK_ROWS) {
        int r1 = r0 + CHUNK_ROWS < N ? r0 + CHUNK_ROWS : N, rows = r1 - r0;
        float *lc = l + r0;
        kr->col_exp_scale(lc, N, width, rows, lse + r0, dloss);
        for (int n = r0; n < r1; n++) {
          int t = targets[n];
          if (t >= b0 && t < b0 + width) lc[(long)(t - b0) * N + (n - r0)] -= dloss;
        }
        /* dwte[b0 + o] (=|+=) sum over the chunk's rows of dlogits[o][n] * x[n] */
        for (int cp = 0; cp < C; cp += nrw) { /* x's column panel stays in L1 */
          for (int o = 0; o < width; o += mr) {
            int m = width - o < mr ? width - o : mr;
            float *out = dwte + (long)(b0 + o) * C + cp;
            const float *a = lc + (long)o * N, *b = x + (long)r0 * C + cp;
            if (C - cp >= nrw)
              kr->tile(m, rows, a, N, 1, b, C, out, C, r0 > 0, NULL);
            else
              kr->tile_edge(m, C - cp, rows, a, N, 1, b, C, out, C, r0 > 0, NULL);
          }
        }
        /* dxg[n] (=|+=) sum over the block's entries of dlogits[o][n] * wte[b0 + o] */
        for (int cp = 0; cp < C; cp += nrw) { /* wte's column panel stays in L1 */
          for (int i0 = r0; i0 < r1; i0 += mr) {
            int m = r1 - i0 < mr ? r1 - i0 : mr;
            const float *a = l + i0; /* a[i + k*N] = dlogits[k][i0 + i] */
            float *out = dxg + (long)i0 * C + cp;
            const float *b = wte + (long)b0 * C + cp;
            if (C - cp >= nrw)
              kr->tile(m, width, a, 1, N, b, C, out, C, b0 > c0, NULL);
            else
              kr->tile_edge(m, C - cp, width, a, 1, N, b, C, out, C, b0 > c0, NULL);
          }
        }
      }
    }
  }
  /* dx = sum of the partials, in group order */
#pragma omp parallel for schedule(static)
  for (long i = 0; i < (long)N * C; i++) {
    float s = 0.0f;
    for (int g = 0; g < G; g++) s += partial[(size_t)g * N * C + i];
    dx[i] = s;
  }
}
