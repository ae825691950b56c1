/*
 * test_model_gradcheck.c - every layer's backward, and the whole model's, against
 * central finite differences of an independent double-precision forward
 * (test_model_ref.h), for every kernel build this CPU runs. Forward values are checked
 * against the same reference on the way.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"
#include "kernels.h"
#include "layers.h"
#include "test_model_ref.h"

/* d loss / d x[i] for every i, loss = f(ctx), by central differences in double */
typedef double (*loss_fn)(void *ctx);
static void fd_grad(loss_fn f, void *ctx, double *x, size_t n, double *grad) {
  for (size_t i = 0; i < n; i++) {
    double xi = x[i], h = 1e-5 * (1.0 + fabs(xi));
    x[i] = xi + h;
    double fp = f(ctx);
    x[i] = xi - h;
    double fm = f(ctx);
    x[i] = xi;
    grad[i] = (fp - fm) / (2.0 * h);
  }
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* Accumulating outputs start from random values; the test subtracts them again. */
static void sub(float *x, const float *x0, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] -= x0[i];
}

/* Every kernel build this CPU runs; each test computes its reference once and checks
 * the float layer with each build. */
static const gpt2_kernels *kernel_sets[3];
static int num_kernel_sets;
#define FOR_EACH_KERNELS(k)                                                                 \
  for (int k##_i = 0; k##_i < num_kernel_sets && (gpt2_kernels_use(kernel_sets[k##_i]), 1); \
       k##_i++)                                                                             \
    for (const char *k = kernel_sets[k##_i]->name; k; k = NULL)

#define GRAD_TOL                                                     \
  2e-5 /* float backward vs double differences, relative to the max; \
        * observed errors are below 2e-6 */

/* ---------------------------------------------------------------- matmul */

struct mm {
  int N, C, OC;
  double *x, *w, *b, *dout, *out;
};
static double mm_loss(void *v) {
  struct mm *m = v;
  ref_matmul(m->out, m->x, m->w, m->b, m->N, m->C, m->OC);
  return dot(m->out, m->dout, (size_t)m->N * m->OC);
}

/* fd_weights = 0: dweight and dbias against the exact double formulas instead (the
 * loss is linear in them; differences over every weight of a big layer are slow). */
static void test_matmul(int N, int C, int OC, int fd_weights) {
  size_t nx = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(OC * 4), *dout = malloc(no * 4);
  float *out = malloc(no * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(OC * 4);
  float *dw0 = malloc(nw * 4), *db0 = malloc(OC * 4);
  struct mm m = {
      N, C, OC, malloc(nx * 8), malloc(nw * 8), malloc(OC * 8), malloc(no * 8), malloc(no * 8)};
  ref_fill(x, m.x, nx, 1.0);
  ref_fill(w, m.w, nw, 0.5);
  ref_fill(b, m.b, OC, 0.5);
  ref_fill(dout, m.dout, no, 1.0);
  ref_fill(dw0, NULL, nw, 1.0);
  ref_fill(db0, NULL, OC, 1.0);
  /* references */
  double *want = malloc(no * 8), *want_nob = malloc(no * 8);
  double *gx = malloc(nx * 8), *gw = malloc(nw * 8), *gb = malloc(OC * 8);
  ref_matmul(want, m.x, m.w, m.b, N, C, OC);
  ref_matmul(want_nob, m.x, m.w, NULL, N, C, OC);
  fd_grad(mm_loss, &m, m.x, nx, gx);
  if (fd_weights) {
    fd_grad(mm_loss, &m, m.w, nw, gw);
    fd_grad(mm_loss, &m, m.b, OC, gb);
  } else {
    for (int o = 0; o < OC; o++) {
      gb[o] = 0;
      for (int k = 0; k < N; k++) gb[o] += m.dout[(long)k * OC + o];
      for (int c = 0; c < C; c++) {
        double s = 0;
        for (int k = 0; k < N; k++) s += m.dout[(long)k * OC + o] * m.x[(long)k * C + c];
        gw[(long)o * C + c] = s;
      }
    }
  }
  char what[96];
  FOR_EACH_KERNELS(k) {
    gpt2_matmul_forward(out, x, w, b, N, C, OC);
    snprintf(what, sizeof what, "[%s] matmul %dx%dx%d forward", k, N, C, OC);
    ref_compare(what, out, want, no, 1e-5);
    gpt2_matmul_forward(out, x, w, NULL, N, C, OC);
    snprintf(what, sizeof what, "[%s] matmul %dx%dx%d forward, no bias", k, N, C, OC);
    ref_compare(what, out, want_nob, no, 1e-5);

    ref_fill(dx, NULL, nx, 100.0); /* overwritten */
    memcpy(dw, dw0, nw * 4);       /* accumulated into */
    memcpy(db, db0, OC * 4);
    gpt2_matmul_backward(dx, dw, db, dout, x, w, N, C, OC);
    sub(dw, dw0, nw);
    sub(db, db0, OC);
    snprintf(what, sizeof what, "[%s] matmul %dx%dx%d dinp", k, N, C, OC);
    ref_compare(what, dx, gx, nx, GRAD_TOL);
    snprintf(what, sizeof what, "[%s] matmul %dx%dx%d dweight", k, N, C, OC);
    ref_compare(what, dw, gw, nw, GRAD_TOL);
    snprintf(what, sizeof what, "[%s] matmul %dx%dx%d dbias", k, N, C, OC);
    ref_compare(what, db, gb, OC, GRAD_TOL);
  }
  free(x), free(w), free(b), free(dout), free(out), free(dx), free(dw), free(db), free(dw0);
  free(db0), free(m.x), free(m.w), free(m.b), free(m.dout), free(m.out), free(want);
  free(want_nob), free(gx), free(gw), free(gb);
}

/* ---------------------------------------------------------------- layernorm */

struct ln {
  int N, C;
  double *x, *w, *b, *dout, *out;
};
static double ln_loss(void *v) {
  struct ln *l = v;
  ref_layernorm(l->out, l->x, l->w, l->b, l->N, l->C);
  return dot(l->out, l->dout, (size_t)l->N * l->C);
}

static void test_layernorm(int N, int C) {
  size_t n = (size_t)N * C;
  float *x = malloc(n * 4), *w = malloc(C * 4), *b = malloc(C * 4), *dout = malloc(n * 4);
  float *out = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
  float *dx = malloc(n * 4), *dw = malloc(C * 4), *db = malloc(C * 4);
  float *dx0 = malloc(n * 4), *dw0 = malloc(C * 4), *db0 = malloc(C * 4);
  struct ln l = {N, C, malloc(n * 8), malloc(C * 8), malloc(C * 8), malloc(n * 8), malloc(n * 8)};
  ref_fill(x, l.x, n, 2.0);
  ref_fill(w, l.w, C, 1.0);
  ref_fill(b, l.b, C, 1.0);
  ref_fill(dout, l.dout, n, 1.0);
  ref_fill(dx0, NULL, n, 1.0);
  ref_fill(dw0, NULL, C, 1.0);
  ref_fill(db0, NULL, C, 1.0);
  double *want = malloc(n * 8), *gx = malloc(n * 8), *gw = malloc(C * 8), *gb = malloc(C * 8);
  ref_layernorm(want, l.x, l.w, l.b, N, C);
  fd_grad(ln_loss, &l, l.x, n, gx);
  fd_grad(ln_loss, &l, l.w, C, gw);
  fd_grad(ln_loss, &l, l.b, C, gb);
  char what[96];
  FOR_EACH_KERNELS(k) {
    memcpy(dx, dx0, n * 4), memcpy(dw, dw0, C * 4), memcpy(db, db0, C * 4);
    gpt2_layernorm_forward(out, mean, rstd, x, w, b, N, C);
    snprintf(what, sizeof what, "[%s] layernorm forward", k);
    ref_compare(what, out, want, n, 1e-5);
    gpt2_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
    sub(dx, dx0, n), sub(dw, dw0, C), sub(db, db0, C);
    snprintf(what, sizeof what, "[%s] layernorm dinp", k);
    ref_compare(what, dx, gx, n, GRAD_TOL);
    snprintf(what, sizeof what, "[%s] layernorm dweight", k);
    ref_compare(what, dw, gw, C, GRAD_TOL);
    snprintf(what, sizeof what, "[%s] layernorm dbias", k);
    ref_compare(what, db, gb, C, GRAD_TOL);
  }
  free(x), free(w), free(b), free(dout), free(out), free(mean), free(rstd), free(dx), free(dw);
  free(db), free(dx0), free(dw0), free(db0), free(l.x), free(l.w), free(l.b), free(l.dout);
  free(l.out), free(want), free(gx), free(gw), free(gb);
}

/* ---------------------------------------------------------------- attention */

struct at {
  int B, T, C, NH;
  double *qkv, *dout, *out;
};
static double at_loss(void *v) {
  struct at *a = v;
  ref_attention(a->out, a->qkv, a->B, a->T, a->C, a->NH);
  return dot(a->out, a->dout, (size_t)a->B * a->T * a->C);
}

static void test_attention(int B, int T, int C, int NH) {
  size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
  float *qkv = malloc(nq * 4), *dout = malloc(no * 4), *out = malloc(no * 4);
  float *att = malloc((size_t)B * NH * T * T * 4), *dqkv = malloc(nq * 4);
  struct at a = {B, T, C, NH, malloc(nq * 8), malloc(no * 8), malloc(no * 8)};
  ref_fill(qkv, a.qkv, nq, 1.5);
  ref_fill(dout, a.dout, no, 1.0);
  double *want = malloc(no * 8), *g = malloc(nq * 8);
  ref_attention(want, a.qkv, B, T, C, NH);
  fd_grad(at_loss, &a, a.qkv, nq, g);
  char what[96];
  FOR_EACH_KERNELS(k) {
    gpt2_attention_forward(out, att, qkv, B, T, C, NH);
    snprintf(what, sizeof what, "[%s] attention B=%d T=%d C=%d NH=%d forward", k, B, T, C, NH);
    ref_compare(what, out, want, no, 1e-5);
    ref_fill(dqkv, NULL, nq, 100.0); /* overwritten */
    gpt2_attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
    snprintf(what, sizeof what, "[%s] attention B=%d T=%d C=%d NH=%d dqkv", k, B, T, C, NH);
    ref_compare(what, dqkv, g, nq, GRAD_TOL);
  }
  free(qkv), free(dout), free(out), free(att), free(dqkv), free(a.qkv), free(a.dout);
  free(a.out), free(want), free(g);
}

/* ---------------------------------------------------------------- GELU */

static void test_gelu(long n) {
  float *x = malloc(n * 4), *out = malloc(n * 4), *dout = malloc(n * 4), *dx = malloc(n * 4);
  double *xd = malloc(n * 8), *want = malloc(n * 8), *g = malloc(n * 8), *dd = malloc(n * 8);
  ref_fill(x, xd, n, 5.0);
  ref_fill(dout, dd, n, 1.0);
  for (long i = 0; i < n; i++) {
    double h = 1e-6 * (1 + fabs(xd[i]));
    want[i] = ref_gelu(xd[i]);
    g[i] = (ref_gelu(xd[i] + h) - ref_gelu(xd[i] - h)) / (2 * h) * dd[i];
  }
  char what[96];
  FOR_EACH_KERNELS(k) {
    gpt2_gelu_forward(out, x, n);
    snprintf(what, sizeof what, "[%s] gelu forward", k);
    ref_compare(what, out, want, n, 1e-6);
    gpt2_gelu_backward(dx, x, dout, n);
    snprintf(what, sizeof what, "[%s] gelu backward", k);
    ref_compare(what, dx, g, n, 1e-5);
  }
  free(x), free(out), free(dout), free(dx), free(xd), free(want), free(g), free(dd);
}

/* ---------------------------------------------------------------- softmax + loss */

struct xe {
  int N, V, Vp;
  double *logits;
  int *targets;
};
static double xe_loss(void *v) {
  struct xe *x = v;
  return ref_xent(x->logits, x->targets, x->N, x->V, x->Vp);
}

static void test_softmax_xent(int N, int V, int Vp) {
  size_t n = (size_t)N * Vp;
  float *logits0 = malloc(n * 4), *logits = malloc(n * 4), *losses = malloc(N * 4);
  int *targets = malloc(N * sizeof(int));
  struct xe x = {N, V, Vp, malloc(n * 8), targets};
  ref_fill(logits0, x.logits, n, 8.0);
  for (int i = 0; i < N; i++) targets[i] = (int)((ref_uniform() + 1.0) / 2.0 * V) % V;
  double want = xe_loss(&x), *g = malloc(n * 8);
  fd_grad(xe_loss, &x, x.logits, n, g);
  char what[96];
  FOR_EACH_KERNELS(k) {
    memcpy(logits, logits0, n * 4);
    gpt2_softmax_crossentropy_forward(losses, logits, targets, N, V, Vp);
    double mean = 0;
    for (int i = 0; i < N; i++) mean += losses[i];
    mean /= N;
    EXPECT(fabs(mean - want) <= 1e-5 * fabs(want), "[%s] cross-entropy: got %.9g want %.9g", k,
           mean, want);
    for (int i = 0; i < N; i++)
      for (int j = V; j < Vp; j++)
        EXPECT(logits[(long)i * Vp + j] == 0.0f, "[%s] padded probability not 0", k);
    gpt2_crossentropy_softmax_backward(logits, targets, 1.0f / N, N, V, Vp);
    snprintf(what, sizeof what, "[%s] softmax+cross-entropy dlogits", k);
    ref_compare(what, logits, g, n, GRAD_TOL);
  }
  free(logits0), free(logits), free(losses), free(targets), free(x.logits), free(g);
}

/* ---------------------------------------------------------------- fused output head */

/* Big enough for several row chunks, blocks per group and groups; the reference is the
 * exact gradient in double (softmax - onehot, then both products), since differences
 * over every weight of a 9000-row head would be slow. The whole-model check below
 * covers the same code with differences. */
static void test_classifier(int N, int C, int V) {
  int Vp = gpt2_padded_vocab(V);
  size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
  float *x = malloc(nx * 4), *wte = malloc(nw * 4), *losses = malloc(N * 4), *lse = malloc(N * 4);
  float *dx = malloc(nx * 4), *dwte = malloc(nw * 4);
  float *scratch = malloc(gpt2_classifier_scratch(N, C) * 4), *stored = malloc((size_t)N * Vp * 4);
  double *xd = malloc(nx * 8), *wd = malloc(nw * 8), *logits = malloc((size_t)N * Vp * 8);
  double *want_loss = malloc(N * 8), *gx = calloc(nx, 8), *gw = calloc(nw, 8);
  int *targets = malloc(N * sizeof(int));
  ref_fill(x, xd, nx, 1.0);
  ref_fill(wte, wd, nw, 1.0);
  for (int i = 0; i < N; i++) targets[i] = (int)((ref_uniform() + 1.0) / 2.0 * V) % V;
  targets[0] = V - 1, targets[1] = 0;
  ref_matmul(logits, xd, wd, NULL, N, C, Vp);
  for (int n = 0; n < N; n++) {
    double *l = logits + (long)n * Vp, mx = -1e300, sum = 0;
    for (int i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
    for (int i = 0; i < V; i++) sum += exp(l[i] - mx);
    want_loss[n] = log(sum) + mx - l[targets[n]];
    for (int i = 0; i < V; i++) {
      double d = (exp(l[i] - mx) / sum - (i == targets[n])) / N;
      for (int c = 0; c < C; c++) {
        gx[(long)n * C + c] += d * wd[(long)i * C + c];
        gw[(long)i * C + c] += d * xd[(long)n * C + c];
      }
    }
  }
  char what[96];
  FOR_EACH_KERNELS(k) {
    gpt2_classifier_forward(losses, lse, NULL, scratch, x, wte, targets, N, C, V);
    snprintf(what, sizeof what, "[%s] output head N=%d C=%d V=%d losses", k, N, C, V);
    ref_compare(what, losses, want_loss, N, 1e-5);
    ref_fill(losses, NULL, N, 1.0);
    gpt2_classifier_forward(losses, lse, stored, scratch, x, wte, targets, N, C, V);
    snprintf(what, sizeof what, "[%s] output head N=%d C=%d V=%d losses, stored", k, N, C, V);
    ref_compare(what, losses, want_loss, N, 1e-5);
    ref_fill(dx, NULL, nx, 100.0); /* both overwritten */
    ref_fill(dwte, NULL, nw, 100.0);
    gpt2_classifier_backward(dx, dwte, stored, scratch, x, wte, lse, targets, 1.0f / N, N, C, V,
                             Vp);
    snprintf(what, sizeof what, "[%s] output head N=%d C=%d V=%d dx", k, N, C, V);
    ref_compare(what, dx, gx, nx, GRAD_TOL);
    snprintf(what, sizeof what, "[%s] output head N=%d C=%d V=%d dwte", k, N, C, V);
    ref_compare(what, dwte, gw, nw, GRAD_TOL);
  }
  free(x), free(wte), free(losses), free(lse), free(dx), free(dwte), free(scratch), free(xd);
  free(stored);
  free(wd), free(logits), free(want_loss), free(gx), free(gw), free(targets);
}

/* ---------------------------------------------------------------- encoder */

static void test_encoder(int B, int T, int C, int V, int maxT) {
  int N = B * T;
  float *wte = malloc((size_t)V * C * 4), *wpe = malloc((size_t)maxT * C * 4);
  float *out = malloc((size_t)N * C * 4), *dout = malloc((size_t)N * C * 4);
  float *dwte = malloc((size_t)V * C * 4), *dwpe = malloc((size_t)maxT * C * 4);
  double *gte = calloc((size_t)V * C, 8), *gpe = calloc((size_t)maxT * C, 8),
         *want = malloc((size_t)N * C * 8);
  int *inp = malloc(N * sizeof(int));
  ref_fill(wte, NULL, (size_t)V * C, 1.0);
  ref_fill(wpe, NULL, (size_t)maxT * C, 1.0);
  ref_fill(dout, NULL, (size_t)N * C, 1.0);
  for (int i = 0; i < N; i++) inp[i] = i % 3 == 0 ? 1 : (int)((ref_uniform() + 1) / 2 * V) % V;
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++) {
      want[i * C + c] = (double)wte[inp[i] * C + c] + wpe[(i % T) * C + c];
      gte[inp[i] * C + c] += dout[i * C + c]; /* the gradient of a sum of lookups */
      gpe[(i % T) * C + c] += dout[i * C + c];
    }
  char what[96];
  FOR_EACH_KERNELS(k) {
    gpt2_encoder_forward(out, inp, wte, wpe, B, T, C);
    snprintf(what, sizeof what, "[%s] encoder forward", k);
    ref_compare(what, out, want, (size_t)N * C, 1e-7);
    memset(dwte, 0, (size_t)V * C * 4);
    memset(dwpe, 0, (size_t)maxT * C * 4);
    gpt2_encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    snprintf(what, sizeof what, "[%s] encoder dwte", k);
    ref_compare(what, dwte, gte, (size_t)V * C, 1e-6);
    snprintf(what, sizeof what, "[%s] encoder dwpe", k);
    ref_compare(what, dwpe, gpe, (size_t)maxT * C, 1e-6);
  }
  free(wte), free(wpe), free(out), free(dout), free(dwte), free(dwpe), free(gte), free(gpe);
  free(want), free(inp);
}

/* ---------------------------------------------------------------- the whole model */

struct whole {
  const gpt2_model *m;
  double *params;
  const int *inputs, *targets;
  int B, T;
};
static double whole_loss(void *v) {
  struct whole *w = v;
  return ref_model_loss(w->m, w->params, w->inputs, w->targets, w->B, w->T, NULL);
}

struct hook_log {
  size_t offset[64], count[64];
  int n;
};
static void log_ready(void *ctx, size_t offset, size_t count) {
  struct hook_log *h = ctx;
  if (h->n < 64) h->offset[h->n] = offset, h->count[h->n] = count;
  h->n++;
}

/* The split-embeddings hook: remembers what backward hands over. */
struct split_log {
  struct hook_log log;
  const float *dx0;
  const int *inputs;
  int B, T;
};
static void split_ready(void *ctx, size_t offset, size_t count) {
  log_ready(&((struct split_log *)ctx)->log, offset, count);
}
static void split_embeddings(void *ctx, const float *dx0, const int *inputs, int B, int T) {
  struct split_log *s = ctx;
  s->dx0 = dx0, s->inputs = inputs, s->B = B, s->T = T;
}

/* Compares each tensor of the flat gradient on its own, so a small tensor's error is
 * not hidden by a large one elsewhere. */
static void compare_tensors(const gpt2_model *m, const float *got, const double *want,
                            const char *kernels) {
  const gpt2_layout *lo = &m->layout;
  size_t C = m->config.channels;
  char what[128];
  snprintf(what, sizeof what, "[%s] model dwte", kernels);
  ref_compare(what, got + lo->wte, want + lo->wte, (size_t)m->config.padded_vocab_size * C,
              GRAD_TOL);
  snprintf(what, sizeof what, "[%s] model dwpe", kernels);
  ref_compare(what, got + lo->wpe, want + lo->wpe, (size_t)m->config.max_seq_len * C, GRAD_TOL);
  const char *names[12] = {"ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                           "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw",  "fcprojb"};
  size_t offs[13] = {lo->ln1w,     lo->ln1b,    lo->qkvw,      lo->qkvb, lo->attprojw,
                     lo->attprojb, lo->ln2w,    lo->ln2b,      lo->fcw,  lo->fcb,
                     lo->fcprojw,  lo->fcprojb, lo->layer_size};
  for (int l = 0; l < m->config.num_layers; l++)
    for (int t = 0; t < 12; t++) {
      size_t o = lo->layers + l * lo->layer_size + offs[t];
      snprintf(what, sizeof what, "[%s] model layer %d d%s", kernels, l, names[t]);
      ref_compare(what, got + o, want + o, offs[t + 1] - offs[t], GRAD_TOL);
    }
  snprintf(what, sizeof what, "[%s] model dlnfw/dlnfb", kernels);
  ref_compare(what, got + lo->lnfw, want + lo->lnfw, 2 * C, GRAD_TOL);
}

static void test_model(void) {
  gpt2_config cfg = {.max_seq_len = 8,
                     .vocab_size = 40,
                     .padded_vocab_size = gpt2_padded_vocab(40),
                     .num_layers = 2,
                     .num_heads = 2,
                     .channels = 12};
  const int B = 2, T = 7; /* T < maxT: the last wpe row must get no gradient */
  char err[256];
  gpt2_model m;
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) {
    EXPECT(0, "setup: %s", err);
    return;
  }
  size_t n = m.layout.num_params;
  m.params = malloc(n * 4);
  gpt2_init_params(&m, 7);
  for (size_t i = 0; i < n; i++) m.params[i] += (float)(0.1 * ref_uniform()); /* not just init */
  int inputs[B * T], targets[B * T];
  for (int i = 0; i < B * T; i++) {
    inputs[i] = (int)((ref_uniform() + 1) / 2 * cfg.vocab_size) % cfg.vocab_size;
    targets[i] = (int)((ref_uniform() + 1) / 2 * cfg.vocab_size) % cfg.vocab_size;
  }
  struct whole w = {&m, ref_dup(m.params, n), inputs, targets, B, T};
  double want_loss = whole_loss(&w);
  /* wte's padded rows never reach the loss: their gradient is exactly 0 */
  size_t real = m.layout.wte + (size_t)cfg.vocab_size * cfg.channels;
  size_t pad_end = m.layout.wte + (size_t)cfg.padded_vocab_size * cfg.channels;
  double *g = calloc(n, 8);
  fd_grad(whole_loss, &w, w.params, real, g);
  fd_grad(whole_loss, &w, w.params + pad_end, n - pad_end, g + pad_end);

  gpt2_acts *a;
  if (gpt2_acts_create(&a, &cfg, B, T, 1, err, sizeof err) != 0) {
    EXPECT(0, "acts: %s", err);
    return;
  }
  float *grads = malloc(n * 4);
  FOR_EACH_KERNELS(k) {
    ref_fill(grads, NULL, n, 100.0); /* backward overwrites */
    float loss = gpt2_forward(&m, a, inputs, targets);
    EXPECT(fabs(loss - want_loss) <= 1e-5 * want_loss, "[%s] model loss %.9g, reference %.9g", k,
           loss, want_loss);
    struct hook_log log = {.n = 0};
    gpt2_grad_hook hook = {.ready = log_ready, .ctx = &log};
    EXPECT(gpt2_backward(&m, a, grads, inputs, targets, &hook) == 0, "backward refused");
    compare_tensors(&m, grads, g, k);
    for (size_t i = real; i < pad_end; i++)
      if (grads[i] != 0.0f) {
        EXPECT(0, "[%s] padded wte row gradient %g at %zu", k, grads[i], i);
        break;
      }
    /* hooks: final layernorm, layers from the top, embeddings; every float once */
    const gpt2_layout *lo = &m.layout;
    EXPECT(log.n == cfg.num_layers + 2, "hook called %d times", log.n);
    if (log.n == cfg.num_layers + 2) {
      EXPECT(log.offset[0] == lo->lnfw && log.count[0] == 2 * (size_t)cfg.channels, "hook 0");
      for (int l = 0; l < cfg.num_layers; l++)
        EXPECT(log.offset[1 + l] == lo->layers + (cfg.num_layers - 1 - l) * lo->layer_size &&
                   log.count[1 + l] == lo->layer_size,
               "hook %d is not layer %d", 1 + l, cfg.num_layers - 1 - l);
      EXPECT(log.offset[log.n - 1] == 0 && log.count[log.n - 1] == lo->layers, "last hook");
    }
    /* split embeddings: wte reported first, then the caller adds the encoder's share;
     * the result is the same bits */
    float *split = malloc(n * 4);
    ref_fill(split, NULL, n, 100.0);
    struct split_log sl = {.log = {.n = 0}};
    gpt2_grad_hook sh = {.ready = split_ready, .embeddings = split_embeddings, .ctx = &sl};
    gpt2_forward(&m, a, inputs, targets);
    EXPECT(gpt2_backward(&m, a, split, inputs, targets, &sh) == 0, "backward refused");
    EXPECT(sl.log.n == cfg.num_layers + 2 && sl.log.offset[0] == lo->wte &&
               sl.log.count[0] == lo->wpe - lo->wte && sl.log.offset[1] == lo->lnfw,
           "[%s] split hook order", k);
    EXPECT(sl.dx0 && sl.inputs == inputs && sl.B == B && sl.T == T, "[%s] embeddings()", k);
    if (sl.dx0)
      gpt2_encoder_backward(split + lo->wte, split + lo->wpe, sl.dx0, sl.inputs, B, T,
                            cfg.channels);
    EXPECT(memcmp(split, grads, n * 4) == 0, "[%s] split embeddings change the gradient", k);
    free(split);
  }
  gpt2_acts_free(a);
  free(grads), free(g), free(w.params), free(m.params);
}

int main(void) {
  num_kernel_sets = gpt2_kernels_available(kernel_sets, 3);
  for (int i = 0; i < num_kernel_sets; i++)
    printf("kernels %s (tile %d x %d)\n", kernel_sets[i]->name, kernel_sets[i]->mr,
           kernel_sets[i]->nrw);
  test_matmul(13, 40, 70, 1); /* edges in rows and columns */
  test_matmul(8, 64, 64, 1);  /* whole tiles only */
  test_matmul(9, 24, 300, 0); /* dinp runs over two blocks of weight rows */
  test_layernorm(11, 37);
  test_attention(2, 11, 12, 3); /* hs 4: edge tiles */
  test_attention(1, 13, 64, 2); /* hs 32: whole tiles */
  test_gelu(1003);
  test_softmax_xent(5, 300, 384);
  test_encoder(2, 5, 12, 30, 8);
  test_classifier(300, 40, 9000); /* 2 row chunks, 32 groups of 1-2 blocks, C edge */
  test_classifier(7, 16, 100);    /* groups without columns */
  test_model();
  if (ref_failures) {
    fprintf(stderr, "%d checks failed\n", ref_failures);
    return 1;
  }
  printf("all gradient checks passed\n");
  return 0;
}
