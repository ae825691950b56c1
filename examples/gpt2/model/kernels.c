/*
 * kernels.c - compiled once per ISA (meson passes GPT2_KERNEL_ISA and the -m flags);
 * see kernels.h for the contract. Written with GCC vector extensions so the same
 * source serves 4-, 8- and 16-lane vectors; -ffp-contract=fast turns a*b+c into FMA.
 *
 * Register tile per ISA (accumulators must stay in registers):
 *   avx512: 32 zmm -> 8 rows x 2 vectors (16 accumulators) = 8 x 32 floats
 *   avx2:   16 ymm -> 6 rows x 2 vectors (12 accumulators) = 6 x 16 floats
 *   generic (SSE2): 16 xmm -> 4 rows x 2 vectors (8 accumulators) = 4 x 8 floats
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#if !defined(GPT2_KERNEL_ISA)
#error "build kernels.c with -DGPT2_KERNEL_ISA=avx512|avx2|generic"
#endif

#if defined(__AVX512F__)
#define VEC 16
#define MR 8
#elif defined(__AVX2__) && defined(__FMA__)
#define VEC 8
#define MR 6
#else
#define VEC 4
#define MR 4
#endif
#define NR 2
#define NRW (NR * VEC)

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define STR_(a) #a
#define STR(a) STR_(a)

typedef float vf __attribute__((vector_size(VEC * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VEC * sizeof(int32_t))));

static inline vf vload(const float *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vsplat(float x) { return (vf){0} + x; }
static inline vf vmax(vf a, vf b) {
  vi m = a > b;
  return (vf)(((vi)a & m) | ((vi)b & ~m));
}
static inline vf vmin(vf a, vf b) {
  vi m = a < b;
  return (vf)(((vi)a & m) | ((vi)b & ~m));
}
static inline float hsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < VEC; i++) s += v[i];
  return s;
}
static inline float hmax(vf v) {
  float s = v[0];
  for (int i = 1; i < VEC; i++) s = v[i] > s ? v[i] : s;
  return s;
}

/* e^x to about 1 ulp (Cephes' polynomial on [-ln2/2, ln2/2] and an exponent shift).
 * Clamped to [-87.3, 88.4]: e^-87.3 is the smallest normal float, so results never
 * become denormal, and a huge negative argument gives ~1e-38 rather than 0. */
static inline vf vexp(vf x) {
  x = vmin(vmax(x, vsplat(-87.33654f)), vsplat(88.37626f));
  vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
  vf r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = vsplat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  vf y = p * (r * r) + r + 1.0f;
  vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  return y * (vf)e;
}

/* tanh(u) = 1 - 2 / (e^{2u} + 1): exact limits +-1, absolute error ~1e-7. */
static inline vf vtanh(vf u) { return 1.0f - 2.0f / (vexp(u + u) + 1.0f); }

/* ---------------------------------------------------------------- matmul tiles */

static void tile(int m, int K, const float *a, long ars, long acs, const float *b, long brs,
                 float *c, long crs, int accumulate, const float *bias) {
  const float *ar[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) ar[i] = a + (long)(i < m ? i : m - 1) * ars;
  vf acc[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) {
      if (accumulate)
        acc[i][j] = i < m ? vload(c + i * crs + j * VEC) : vsplat(0.0f);
      else
        acc[i][j] = bias ? vload(bias + j * VEC) : vsplat(0.0f);
    }
  }
  for (int k = 0; k < K; k++) {
    vf bv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; j++) bv[j] = vload(b + j * VEC);
    b += brs;
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      float s = *ar[i];
      ar[i] += acs;
#pragma GCC unroll 4
      for (int j = 0; j < NR; j++) acc[i][j] += bv[j] * s;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    if (i < m) {
#pragma GCC unroll 4
      for (int j = 0; j < NR; j++) vstore(c + i * crs + j * VEC, acc[i][j]);
    }
  }
}

static void tile_edge(int m, int n, int K, const float *a, long ars, long acs, const float *b,
                      long brs, float *c, long crs, int accumulate, const float *bias) {
  for (int i = 0; i < m; i++) {
    for (int j = 0; j < n; j++) {
      float s = accumulate ? c[i * crs + j] : bias ? bias[j] : 0.0f;
      for (int k = 0; k < K; k++) s += a[i * ars + k * acs] * b[k * brs + j];
      c[i * crs + j] = s;
    }
  }
}

/* ---------------------------------------------------------------- softmax */

static float softmax_row(float *row, int V, int Vp, int target) {
  float target_logit = target >= 0 ? row[target] : 0.0f;
  int i = 0;
  vf vm = vsplat(-INFINITY);
  for (; i + VEC <= V; i += VEC) vm = vmax(vm, vload(row + i));
  float mx = hmax(vm);
  for (; i < V; i++) mx = row[i] > mx ? row[i] : mx;

  vf vs = vsplat(0.0f);
  for (i = 0; i + VEC <= V; i += VEC) {
    vf e = vexp(vload(row + i) - mx);
    vstore(row + i, e);
    vs += e;
  }
  float sum = hsum(vs);
  if (i < V) { /* the tail, through the same exp, padded with lanes not summed */
    float tmp[VEC];
    for (int j = 0; j < VEC; j++) tmp[j] = i + j < V ? row[i + j] - mx : 0.0f;
    vf e = vexp(vload(tmp));
    for (int j = 0; i + j < V; j++) {
      row[i + j] = e[j];
      sum += e[j];
    }
  }
  float scale = 1.0f / sum;
  for (i = 0; i + VEC <= V; i += VEC) vstore(row + i, vload(row + i) * scale);
  for (; i < V; i++) row[i] *= scale;
  for (i = V; i < Vp; i++) row[i] = 0.0f;
  /* -log p[target] = log(sum) - (logit - max): no log of a tiny probability */
  return target >= 0 ? logf(sum) - (target_logit - mx) : 0.0f;
}

/* A column-wise block operation: full vectors of columns, then the tail columns
 * through the same vector code on a zero-padded copy. */
static void col_stats_vec(float *m, float *s, const float *l, long ld, int rows) {
  vf bm = vload(m);
  for (int r = 0; r < rows; r++) bm = vmax(bm, vload(l + r * ld));
  vf sum = vload(s) * vexp(vload(m) - bm); /* 0 * e^(-inf) = 0 on the first block */
  vi fresh = vload(m) == vsplat(-INFINITY);
  sum = (vf)((vi)sum & ~fresh);
  for (int r = 0; r < rows; r++) sum += vexp(vload(l + r * ld) - bm);
  vstore(m, bm);
  vstore(s, sum);
}

static void col_softmax_stats(float *m, float *s, const float *l, long ld, int rows, int ncols) {
  int j = 0;
  for (; j + VEC <= ncols; j += VEC) col_stats_vec(m + j, s + j, l + j, ld, rows);
  if (j < ncols) {
    int k = ncols - j;
    float tm[VEC], ts[VEC], tl[VEC];
    for (int i = 0; i < VEC; i++) tm[i] = i < k ? m[j + i] : 0.0f, ts[i] = i < k ? s[j + i] : 0.0f;
    vf bm = vload(tm), sum;
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < VEC; i++) tl[i] = i < k ? l[r * ld + j + i] : 0.0f;
      bm = vmax(bm, vload(tl));
    }
    sum = vload(ts) * vexp(vload(tm) - bm);
    vi fresh = vload(tm) == vsplat(-INFINITY);
    sum = (vf)((vi)sum & ~fresh);
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < VEC; i++) tl[i] = i < k ? l[r * ld + j + i] : 0.0f;
      sum += vexp(vload(tl) - bm);
    }
    for (int i = 0; i < k; i++) m[j + i] = bm[i], s[j + i] = sum[i];
  }
}

static void col_exp_scale(float *l, long ld, int rows, int ncols, const float *shift, float scale) {
  int j = 0;
  for (; j + VEC <= ncols; j += VEC) {
    vf sh = vload(shift + j);
    for (int r = 0; r < rows; r++) vstore(l + r * ld + j, vexp(vload(l + r * ld + j) - sh) * scale);
  }
  if (j < ncols) {
    int k = ncols - j;
    float tsh[VEC], tl[VEC];
    for (int i = 0; i < VEC; i++) tsh[i] = i < k ? shift[j + i] : 0.0f;
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < VEC; i++) tl[i] = i < k ? l[r * ld + j + i] : 0.0f;
      vf e = vexp(vload(tl) - vload(tsh)) * scale;
      for (int i = 0; i < k; i++) l[r * ld + j + i] = e[i];
    }
  }
}

/* ---------------------------------------------------------------- GELU (tanh form) */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

static inline vf gelu_vec(vf x) {
  vf u = GELU_SCALE * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + vtanh(u));
}

static inline vf gelu_grad_vec(vf x, vf dout) {
  vf u = GELU_SCALE * (x + 0.044715f * x * x * x);
  vf t = vtanh(u);
  vf sech2 = 1.0f - t * t;
  vf local = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
  return local * dout;
}

static void gelu_forward(float *out, const float *inp, long n) {
  long i = 0;
  for (; i + VEC <= n; i += VEC) vstore(out + i, gelu_vec(vload(inp + i)));
  if (i < n) {
    float tmp[VEC] = {0};
    memcpy(tmp, inp + i, (size_t)(n - i) * sizeof(float));
    vf r = gelu_vec(vload(tmp));
    for (long j = 0; i + j < n; j++) out[i + j] = r[j];
  }
}

static void gelu_backward(float *dinp, const float *inp, const float *dout, long n) {
  long i = 0;
  for (; i + VEC <= n; i += VEC) vstore(dinp + i, gelu_grad_vec(vload(inp + i), vload(dout + i)));
  if (i < n) {
    float x[VEC] = {0}, d[VEC] = {0};
    memcpy(x, inp + i, (size_t)(n - i) * sizeof(float));
    memcpy(d, dout + i, (size_t)(n - i) * sizeof(float));
    vf r = gelu_grad_vec(vload(x), vload(d));
    for (long j = 0; i + j < n; j++) dinp[i + j] = r[j];
  }
}

/* ---------------------------------------------------------------- AdamW */

static inline vf adamw_vec(vf p, vf g, vf *m, vf *v, float lr, float b1, float b2, float b1c,
                           float b2c, float eps, float wd) {
  *m = b1 * *m + (1.0f - b1) * g;
  *v = b2 * *v + (1.0f - b2) * g * g;
  vf mhat = *m / b1c, vhat = *v / b2c;
  vf r;
  for (int j = 0; j < VEC; j++) r[j] = __builtin_sqrtf(vhat[j]); /* vsqrtps: no libm call */
  return p - lr * (mhat / (r + eps) + wd * p);
}

static void adamw(float *params, const float *grads, float *m, float *v, long n, float lr, float b1,
                  float b2, float b1c, float b2c, float eps, float wd) {
  long i = 0;
  for (; i + VEC <= n; i += VEC) {
    vf mv = vload(m + i), vv = vload(v + i);
    vf p = adamw_vec(vload(params + i), vload(grads + i), &mv, &vv, lr, b1, b2, b1c, b2c, eps, wd);
    vstore(params + i, p);
    vstore(m + i, mv);
    vstore(v + i, vv);
  }
  if (i < n) { /* the tail through the same arithmetic */
    float tp[VEC] = {0}, tg[VEC] = {0}, tm[VEC] = {0}, tv[VEC] = {0};
    long k = n - i;
    memcpy(tp, params + i, k * sizeof(float));
    memcpy(tg, grads + i, k * sizeof(float));
    memcpy(tm, m + i, k * sizeof(float));
    memcpy(tv, v + i, k * sizeof(float));
    vf mv = vload(tm), vv = vload(tv);
    vf p = adamw_vec(vload(tp), vload(tg), &mv, &vv, lr, b1, b2, b1c, b2c, eps, wd);
    vstore(tp, p);
    vstore(tm, mv);
    vstore(tv, vv);
    memcpy(params + i, tp, k * sizeof(float));
    memcpy(m + i, tm, k * sizeof(float));
    memcpy(v + i, tv, k * sizeof(float));
  }
}

const gpt2_kernels CAT(gpt2_kernels_, GPT2_KERNEL_ISA) = {
    .name = STR(GPT2_KERNEL_ISA),
    .mr = MR,
    .nrw = NRW,
    .tile = tile,
    .tile_edge = tile_edge,
    .softmax_row = softmax_row,
    .col_softmax_stats = col_softmax_stats,
    .col_exp_scale = col_exp_scale,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .adamw = adamw,
};
