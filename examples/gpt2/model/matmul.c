/*
 * matmul.c - the linear layers, where nearly all of the time goes (the classifier
 * (B*T, C) x (C, Vp) above all). Each product is cut into register tiles
 * (kernels.h); this file decides the order so the operands of a tile stay in cache,
 * and spreads tiles over OpenMP threads. A tile always sums its K terms in the same
 * order, and no two threads add into one output, so results do not depend on the
 * thread count.
 */
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "layers.h"

#define MAX_TILE_FLOATS 256 /* largest mr * nrw among the kernel builds */
#define DINP_K_BLOCK 256    /* rows of weight per pass in dinp: 256 x nrw floats in L1 */

static int max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }

/* Splits `rows` rows into chunks (multiples of mr) so that `other` x chunks gives the
 * threads at least four tasks each where the rows allow. Returns rows per chunk. */
static int chunk_rows(int rows, int other, int mr) {
  int want = ceil_div(4L * max_threads(), other);
  int blocks = ceil_div(rows, mr);
  if (want > blocks) want = blocks;
  if (want < 1) want = 1;
  return ceil_div(blocks, want) * mr;
}

void gpt2_gemm(int M, int N, int K, const float *a, long ars, long acs, const float *b, long brs,
               float *c, long crs, int accumulate) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  for (int j0 = 0; j0 < N; j0 += kr->nrw) {
    int n = N - j0 < kr->nrw ? N - j0 : kr->nrw;
    for (int i0 = 0; i0 < M; i0 += kr->mr) {
      int m = M - i0 < kr->mr ? M - i0 : kr->mr;
      if (n == kr->nrw)
        kr->tile(m, K, a + i0 * ars, ars, acs, b + j0, brs, c + i0 * crs + j0, crs, accumulate,
                 NULL);
      else
        kr->tile_edge(m, n, K, a + i0 * ars, ars, acs, b + j0, brs, c + i0 * crs + j0, crs,
                      accumulate, NULL);
    }
  }
}

/* out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias.
 * Tasks are (panel of nrw output channels) x (chunk of rows). A task copies its panel
 * of weight transposed, (C, nrw), so each k step of a tile reads one contiguous row;
 * the copy costs 1/rows of the arithmetic. */
void gpt2_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int nrw = kr->nrw, mr = kr->mr;
  const int panels = ceil_div(OC, nrw);
  const int rows = chunk_rows(N, panels, mr);
  const int chunks = ceil_div(N, rows);
  const long tasks = (long)panels * chunks;
#pragma omp parallel
  {
    float *wp = aligned_alloc(64, ((size_t)C * nrw * sizeof(float) + 63) / 64 * 64);
    float bp[MAX_TILE_FLOATS], tmp[MAX_TILE_FLOATS];
    int packed = -1;
#pragma omp for schedule(static)
    for (long t = 0; t < tasks; t++) {
      int p = (int)(t / chunks), o0 = p * nrw;
      int n = OC - o0 < nrw ? OC - o0 : nrw;
      if (p != packed) {
        for (int j = 0; j < nrw; j++) {
          const float *w = weight + (long)(o0 + j) * C;
          for (int c = 0; c < C; c++) wp[(long)c * nrw + j] = j < n ? w[c] : 0.0f;
          bp[j] = bias && j < n ? bias[o0 + j] : 0.0f;
        }
        packed = p;
      }
      int r0 = (int)(t % chunks) * rows, r1 = r0 + rows < N ? r0 + rows : N;
      for (int i0 = r0; i0 < r1; i0 += mr) {
        int m = r1 - i0 < mr ? r1 - i0 : mr;
        const float *a = inp + (long)i0 * C;
        if (n == nrw) {
          kr->tile(m, C, a, C, 1, wp, nrw, out + (long)i0 * OC + o0, OC, 0, bias ? bp : NULL);
        } else {
          kr->tile(m, C, a, C, 1, wp, nrw, tmp, nrw, 0, bias ? bp : NULL);
          for (int i = 0; i < m; i++)
            memcpy(out + (long)(i0 + i) * OC + o0, tmp + i * nrw, n * sizeof(float));
        }
      }
    }
    free(wp);
  }
}

/* dinp (N,C) = dout (N,OC) @ weight (OC,C). Tasks are (chunk of rows) x (panel of nrw
 * input channels); each walks weight in blocks of DINP_K_BLOCK rows so the block is
 * reused by every tile of the chunk while it sits in L1. */
static void matmul_backward_input(float *dinp, const float *dout, const float *weight, int N, int C,
                                  int OC) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int nrw = kr->nrw, mr = kr->mr;
  const int panels = ceil_div(C, nrw);
  const int rows = chunk_rows(N, panels, mr);
  const int chunks = ceil_div(N, rows);
  const long tasks = (long)panels * chunks;
#pragma omp parallel for schedule(static)
  for (long t = 0; t < tasks; t++) {
    int c0 = (int)(t / chunks) * nrw;
    int n = C - c0 < nrw ? C - c0 : nrw;
    int r0 = (int)(t % chunks) * rows, r1 = r0 + rows < N ? r0 + rows : N;
    for (int k0 = 0; k0 < OC; k0 += DINP_K_BLOCK) {
      int kl = OC - k0 < DINP_K_BLOCK ? OC - k0 : DINP_K_BLOCK;
      const float *b = weight + (long)k0 * C + c0;
      for (int i0 = r0; i0 < r1; i0 += mr) {
        int m = r1 - i0 < mr ? r1 - i0 : mr;
        const float *a = dout + (long)i0 * OC + k0;
        float *c = dinp + (long)i0 * C + c0;
        if (n == nrw)
          kr->tile(m, kl, a, OC, 1, b, C, c, C, k0 > 0, NULL);
        else
          kr->tile_edge(m, n, kl, a, OC, 1, b, C, c, C, k0 > 0, NULL);
      }
    }
  }
}

/* dweight (OC,C) += dout^T @ inp, dbias += column sums of dout. Computed transposed,
 * as tiles of (mr input channels) x (nrw output channels): a tile then broadcasts mr
 * contiguous floats of an inp row and loads nrw contiguous floats of a dout row. Tasks
 * are (panel of output channels) x (chunk of input channels). */
static void matmul_backward_weight(float *dweight, float *dbias, const float *dout,
                                   const float *inp, int N, int C, int OC) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int nrw = kr->nrw, mr = kr->mr;
  const int panels = ceil_div(OC, nrw);
  const int cols = chunk_rows(C, panels, mr);
  const int chunks = ceil_div(C, cols);
  const long tasks = (long)panels * chunks;
#pragma omp parallel
  {
    float tmp[MAX_TILE_FLOATS];
#pragma omp for schedule(static)
    for (long t = 0; t < tasks; t++) {
      int o0 = (int)(t / chunks) * nrw;
      int n = OC - o0 < nrw ? OC - o0 : nrw;
      int cc = (int)(t % chunks);
      int c0 = cc * cols, c1 = c0 + cols < C ? c0 + cols : C;
      for (int ci = c0; ci < c1; ci += mr) {
        int m = c1 - ci < mr ? c1 - ci : mr;
        if (n == nrw)
          kr->tile(m, N, inp + ci, 1, C, dout + o0, OC, tmp, nrw, 0, NULL);
        else
          kr->tile_edge(m, n, N, inp + ci, 1, C, dout + o0, OC, tmp, nrw, 0, NULL);
        for (int j = 0; j < n; j++) {
          float *dw = dweight + (long)(o0 + j) * C + ci;
          for (int i = 0; i < m; i++) dw[i] += tmp[i * nrw + j];
        }
      }
      if (dbias && cc == 0) {
        float s[MAX_TILE_FLOATS] = {0};
        for (int k = 0; k < N; k++) {
          const float *d = dout + (long)k * OC + o0;
          for (int j = 0; j < n; j++) s[j] += d[j];
        }
        for (int j = 0; j < n; j++) dbias[o0 + j] += s[j];
      }
    }
  }
}

void gpt2_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
  matmul_backward_input(dinp, dout, weight, N, C, OC);
  matmul_backward_weight(dweight, dbias, dout, inp, N, C, OC);
}
