/*
 * kernels.h - the inner loops that decide speed, compiled once per x86 ISA level
 * (kernels.c built three times: AVX-512, AVX2+FMA, and the baseline) and picked at
 * run time, so one binary runs fast on the build machine and correctly on any x86-64.
 *
 * The centre is a register tile: c[i][0:nrw] for i < m <= mr,
 *   c[i][j] (= or +=) sum_{k<K} a[i*ars + k*acs] * b[k*brs + j]
 * where a is read one scalar at a time (broadcast) and b one row of nrw contiguous
 * floats at a time. Every matmul of the model (forward, both backward products, and
 * the four products inside attention) is this shape with different strides.
 */
#ifndef GPT2_MODEL_KERNELS_H
#define GPT2_MODEL_KERNELS_H

#include <stddef.h>

typedef struct {
  const char *name; /* "avx512", "avx2", "generic" */
  int mr;           /* rows of the register tile */
  int nrw;          /* columns of the register tile (floats) */
  /* Full-width tile: m <= mr rows (rows m..mr-1 are computed from row m-1 and not
   * stored), exactly nrw columns; b must have nrw readable floats per row. Initial
   * value: c's content when accumulate, else bias[0:nrw] when bias, else 0. */
  void (*tile)(int m, int K, const float *a, long ars, long acs, const float *b, long brs, float *c,
               long crs, int accumulate, const float *bias);
  /* The same for n < nrw columns (reads only n floats of each b row). */
  void (*tile_edge)(int m, int n, int K, const float *a, long ars, long acs, const float *b,
                    long brs, float *c, long crs, int accumulate, const float *bias);
  /* row[0:V) <- softmax(row[0:V)), row[V:Vp) <- 0, in place. Returns -log(p[target]),
   * or 0 when target < 0. */
  float (*softmax_row)(float *row, int V, int Vp, int target);
  /* Column-wise softmax statistics of a block l (rows x ncols, row stride ld), online:
   * for each column j, m[j] becomes max(m[j], max of the column) and s[j] the sum of
   * e^(x - m[j]) over everything seen so far (s[j] rescaled to the new maximum). */
  void (*col_softmax_stats)(float *m, float *s, const float *l, long ld, int rows, int ncols);
  /* l[r][j] = e^(l[r][j] - shift[j]) * scale over a block, in place */
  void (*col_exp_scale)(float *l, long ld, int rows, int ncols, const float *shift, float scale);
  /* GELU, tanh form, on n elements; backward overwrites dinp. */
  void (*gelu_forward)(float *out, const float *inp, long n);
  void (*gelu_backward)(float *dinp, const float *inp, const float *dout, long n);
  /* AdamW on n parameters; b1c, b2c are the bias corrections 1 - beta^t */
  void (*adamw)(float *params, const float *grads, float *m, float *v, long n, float lr, float b1,
                float b2, float b1c, float b2c, float eps, float wd);
} gpt2_kernels;

/* The kernels in use: the best the CPU supports, or the ones GPT2_KERNELS names
 * (avx512, avx2, generic) when that environment variable is set and supported. */
const gpt2_kernels *gpt2_kernels_get(void);

/* Every kernel set this CPU can run, best first; returns how many (tests). */
int gpt2_kernels_available(const gpt2_kernels **list, int max);

/* Uses k from now on (tests compare the sets). */
void gpt2_kernels_use(const gpt2_kernels *k);

/* The three builds of kernels.c. */
extern const gpt2_kernels gpt2_kernels_avx512;
extern const gpt2_kernels gpt2_kernels_avx2;
extern const gpt2_kernels gpt2_kernels_generic;

#endif /* GPT2_MODEL_KERNELS_H */
