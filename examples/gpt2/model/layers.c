/*
 * layers.c - every GPT-2 layer but the matmul (matmul.c), forward next to backward.
 * Shapes and overwrite/accumulate rules are in layers.h.
 */
#include "layers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define CHANNEL_BLOCK 16 /* channels per task where a reduction runs over rows */

/* ---------------------------------------------------------------- encoder */

void gpt2_encoder_forward(float *out, const int *inp, const float *wte, const float *wpe, int B,
                          int T, int C) {
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; bt++) {
    const float *te = wte + (long)inp[bt] * C, *pe = wpe + (long)(bt % T) * C;
    float *o = out + (long)bt * C;
    for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
  }
}

/* Rows of dwte are shared by repeated tokens, so threads split the channels, not the
 * rows: each sum then runs over (b,t) in order whatever the thread count. */
void gpt2_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *inp, int B,
                           int T, int C) {
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < C; c0 += CHANNEL_BLOCK) {
    int c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
    for (int bt = 0; bt < B * T; bt++) {
      const float *d = dout + (long)bt * C;
      float *te = dwte + (long)inp[bt] * C, *pe = dwpe + (long)(bt % T) * C;
      for (int c = c0; c < c1; c++) {
        te[c] += d[c];
        pe[c] += d[c];
      }
    }
  }
}

/* ---------------------------------------------------------------- layernorm */

void gpt2_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (long)n * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    float m = s / C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    float r = 1.0f / sqrtf(v / C + 1e-5f);
    float *o = out + (long)n * C;
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    mean[n] = m;
    rstd[n] = r;
  }
}

void gpt2_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C) {
  /* dinp: rows are independent */
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *x = inp + (long)n * C, *d = dout + (long)n * C;
    float m = mean[n], r = rstd[n];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
    for (int c = 0; c < C; c++) {
      float dnorm = weight[c] * d[c];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * (x[c] - m) * r;
    }
    dnorm_mean /= C;
    dnorm_norm_mean /= C;
    float *di = dinp + (long)n * C;
    for (int c = 0; c < C; c++) {
      float norm = (x[c] - m) * r;
      di[c] += (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean) * r;
    }
  }
  /* dweight, dbias: sums over rows, split by channel */
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < C; c0 += CHANNEL_BLOCK) {
    int c1 = c0 + CHANNEL_BLOCK < C ? c0 + CHANNEL_BLOCK : C;
    float dw[CHANNEL_BLOCK] = {0}, db[CHANNEL_BLOCK] = {0};
    for (int n = 0; n < N; n++) {
      const float *x = inp + (long)n * C, *d = dout + (long)n * C;
      float m = mean[n], r = rstd[n];
      for (int c = c0; c < c1; c++) {
        dw[c - c0] += (x[c] - m) * r * d[c];
        db[c - c0] += d[c];
      }
    }
    for (int c = c0; c < c1; c++) {
      dweight[c] += dw[c - c0];
      dbias[c] += db[c - c0];
    }
  }
}

/* ---------------------------------------------------------------- attention */

/* Per (b, h), with q, k, v rows of hs floats at stride 3C:
 *   S = q k^T / sqrt(hs), causal;  att = softmax(S) by row;  y = att v.
 * Both products go through the register tiles (gpt2_gemm): S needs k^T, which is
 * copied once per head; a block of rows [t0, t0+m) only needs columns t2 < t0+m. */
void gpt2_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int hs = C / NH, C3 = 3 * C, mr = kr->mr;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
  {
    float *kt = malloc((size_t)hs * T * sizeof(float)); /* k^T (hs, T) */
#pragma omp for schedule(static) collapse(2)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const float *q = qkv + (long)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        float *a = att + ((long)b * NH + h) * T * T;
        float *y = out + (long)b * T * C + h * hs;
        for (int t = 0; t < T; t++)
          for (int d = 0; d < hs; d++) kt[(long)d * T + t] = k[(long)t * C3 + d];
        for (int t0 = 0; t0 < T; t0 += mr) {
          int m = T - t0 < mr ? T - t0 : mr;
          gpt2_gemm(m, t0 + m, hs, q + (long)t0 * C3, C3, 1, kt, T, a + (long)t0 * T, T, 0);
        }
        for (int t = 0; t < T; t++) {
          float *row = a + (long)t * T;
          for (int t2 = 0; t2 <= t; t2++) row[t2] *= scale;
          kr->softmax_row(row, t + 1, T, -1); /* zeroes t2 > t */
        }
        for (int t0 = 0; t0 < T; t0 += mr) {
          int m = T - t0 < mr ? T - t0 : mr;
          gpt2_gemm(m, hs, t0 + m, a + (long)t0 * T, T, 1, v, C3, y + (long)t0 * C, C, 0);
        }
      }
    }
    free(kt);
  }
}

/* Per (b, h), with dy = dout's rows for the head:
 *   datt = dy v^T;  dv = att^T dy;
 *   dS = att * (datt - rowsum(att * datt)) / sqrt(hs)  (softmax backward, and the scale);
 *   dq = dS k;  dk = dS^T q.
 * att is zero above the diagonal, so att^T and dS^T products over rows t >= t2 only. */
void gpt2_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             int B, int T, int C, int NH) {
  const gpt2_kernels *kr = gpt2_kernels_get();
  const int hs = C / NH, C3 = 3 * C, mr = kr->mr;
  const float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
  {
    float *vt = malloc((size_t)hs * T * sizeof(float)); /* v^T (hs, T) */
    float *ds = malloc((size_t)T * T * sizeof(float));  /* datt, then dS (T, T) */
#pragma omp for schedule(static) collapse(2)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const float *q = qkv + (long)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
        const float *a = att + ((long)b * NH + h) * T * T;
        const float *dy = dout + (long)b * T * C + h * hs;
        float *dq = dqkv + (long)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
        for (int t = 0; t < T; t++)
          for (int d = 0; d < hs; d++) vt[(long)d * T + t] = v[(long)t * C3 + d];
        for (int t0 = 0; t0 < T; t0 += mr) {
          int m = T - t0 < mr ? T - t0 : mr;
          /* datt rows t0.., columns < t0+m */
          gpt2_gemm(m, t0 + m, hs, dy + (long)t0 * C, C, 1, vt, T, ds + (long)t0 * T, T, 0);
          /* dv rows t0..: sum over t >= t0 of att[t][t2] dy[t] */
          gpt2_gemm(m, hs, T - t0, a + (long)t0 * T + t0, 1, T, dy + (long)t0 * C, C,
                    dv + (long)t0 * C3, C3, 0);
        }
        for (int t = 0; t < T; t++) {
          const float *ar = a + (long)t * T;
          float *dr = ds + (long)t * T;
          float dot = 0.0f;
          for (int t2 = 0; t2 <= t; t2++) dot += ar[t2] * dr[t2];
          for (int t2 = 0; t2 <= t; t2++) dr[t2] = ar[t2] * (dr[t2] - dot) * scale;
          for (int t2 = t + 1; t2 < T; t2++) dr[t2] = 0.0f;
        }
        for (int t0 = 0; t0 < T; t0 += mr) {
          int m = T - t0 < mr ? T - t0 : mr;
          gpt2_gemm(m, hs, t0 + m, ds + (long)t0 * T, T, 1, k, C3, dq + (long)t0 * C3, C3, 0);
          gpt2_gemm(m, hs, T - t0, ds + (long)t0 * T + t0, 1, T, q + (long)t0 * C3, C3,
                    dk + (long)t0 * C3, C3, 0);
        }
      }
    }
    free(vt);
    free(ds);
  }
}

/* ---------------------------------------------------------------- GELU, residual */

#define ELEMENTWISE_CHUNK 4096L

void gpt2_gelu_forward(float *out, const float *inp, long n) {
  const gpt2_kernels *kr = gpt2_kernels_get();
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i += ELEMENTWISE_CHUNK)
    kr->gelu_forward(out + i, inp + i, n - i < ELEMENTWISE_CHUNK ? n - i : ELEMENTWISE_CHUNK);
}

void gpt2_gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
  const gpt2_kernels *kr = gpt2_kernels_get();
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; i += ELEMENTWISE_CHUNK)
    kr->gelu_backward(dinp + i, inp + i, dout + i,
                      n - i < ELEMENTWISE_CHUNK ? n - i : ELEMENTWISE_CHUNK);
}

void gpt2_residual_forward(float *out, const float *a, const float *b, long n) {
#pragma omp parallel for simd schedule(static)
  for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* ---------------------------------------------------------------- softmax + loss */

void gpt2_softmax_crossentropy_forward(float *losses, float *logits, const int *targets, int N,
                                       int V, int Vp) {
  const gpt2_kernels *kr = gpt2_kernels_get();
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float loss = kr->softmax_row(logits + (long)n * Vp, V, Vp, targets ? targets[n] : -1);
    if (targets) losses[n] = loss;
  }
}

void gpt2_crossentropy_softmax_backward(float *probs, const int *targets, float dloss, int N, int V,
                                        int Vp) {
  (void)Vp; /* padded columns hold probability 0 and stay 0 */
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float *row = probs + (long)n * Vp;
#pragma omp simd
    for (int i = 0; i < V; i++) row[i] *= dloss;
    row[targets[n]] -= dloss;
  }
}

void gpt2_matvec(float *out, const float *x, const float *weight, const float *bias, int C,
                 int OC) {
#pragma omp parallel for schedule(static)
  for (int o = 0; o < OC; o++) {
    const float *w = weight + (long)o * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += w[c] * x[c];
    out[o] = s + (bias ? bias[o] : 0.0f);
  }
}

void gpt2_attention_token(float *y, const float *q, const float *kc, const float *vc, int pos,
                          int nh, int hs, int stride, float *scores) {
  const float scale = 1.0f / sqrtf((float)hs);
  for (int h = 0; h < nh; h++) {
    const float *qh = q + h * hs;
    float mx = -INFINITY, sum = 0.0f;
    for (int t = 0; t <= pos; t++) {
      const float *k = kc + (size_t)t * stride + h * hs;
      float s = 0.0f;
      for (int d = 0; d < hs; d++) s += qh[d] * k[d];
      scores[t] = s * scale;
      mx = scores[t] > mx ? scores[t] : mx;
    }
    for (int t = 0; t <= pos; t++) sum += scores[t] = expf(scores[t] - mx);
    float *yh = y + h * hs;
    memset(yh, 0, (size_t)hs * sizeof(float));
    for (int t = 0; t <= pos; t++) {
      const float *v = vc + (size_t)t * stride + h * hs;
      float p = scores[t] / sum;
      for (int d = 0; d < hs; d++) yh[d] += p * v[d];
    }
  }
}
