/*
 * tp.c - see tp.h. The per-token forward is infer.c's, with each matrix-vector product
 * cut to this rank's rows or columns. Shapes: C channels, NH heads of hs, N ranks;
 * per rank cl = C/N attention channels (NH/N heads) and fl = 4C/N hidden units.
 */
#include "tp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* MPI is one per process, not per backend context: when this library started it, it
 * finalises it when the process exits (or the library is unloaded), after every
 * instance is gone. MPI cannot be started twice, so not at deinit_backend. */
static int mpi_started_here;
__attribute__((destructor)) static void tp_finalize(void) {
  int finalized = 0;
  if (mpi_started_here && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Finalize();
}

int tp_world_init(tp_world *w, char *err, size_t errlen) {
  *w = (tp_world){0, 1, NULL};
  const char *off = getenv("WASI_NN_GPT2_TP");
  const char *size = getenv("OMPI_COMM_WORLD_SIZE");
  if (!size) size = getenv("PMI_SIZE");
  int inited = 0;
  MPI_Initialized(&inited);
  if ((off && !strcmp(off, "0")) || (!inited && (!size || atoi(size) <= 1))) return 0;
  if (!inited) {
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      snprintf(err, errlen, "MPI_Init_thread failed under mpirun");
      return -1;
    }
    mpi_started_here = 1;
  }
  int n;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  if (n <= 1) return 0;
  if (mlcommCommInitFromMPI(&w->comm, MPI_COMM_WORLD, NULL) != mlcommSuccess) {
    snprintf(err, errlen, "mlcommCommInitFromMPI failed: %s", mlcommGetLastError(NULL));
    w->comm = NULL;
    return -1;
  }
  mlcommCommRank(w->comm, &w->rank);
  mlcommCommCount(w->comm, &w->nranks);
  return 0;
}

void tp_world_free(tp_world *w) {
  if (w->comm) mlcommCommDestroy(w->comm);
  *w = (tp_world){0, 1, NULL};
}

int tp_any(const tp_world *w, int failed) {
  if (!w->comm) return failed != 0;
  int f = failed != 0;
  if (mlcommAllReduce(&f, &f, 1, mlcommInt32, mlcommMax, w->comm) != mlcommSuccess) return 1;
  return f;
}

void tp_broadcast_u64(const tp_world *w, uint64_t *v) {
  if (w->comm) mlcommBroadcast(v, v, 1, mlcommUint64, 0, w->comm);
}

typedef struct {
  float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb; /* qkvw (3cl,C) attprojw (C,cl) */
  float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;     /* fcw (fl,C) fcprojw (C,fl) */
} tp_layer;

struct tp_model {
  gpt2_config cfg;
  const tp_world *w;
  int cl, fl;       /* attention channels and hidden units on this rank */
  int v_lo, v_n, vs; /* vocabulary rows [v_lo, v_lo + v_n) of vs per rank */
  float *wte, *wpe, *lnfw, *lnfb; /* wte (vs,C): this rank's rows, zero padded */
  tp_layer *layers;
  float *mem;
};

struct tp_kv {
  int max_len, len;
  float *k, *v; /* (L, max_len, cl) */
  float *x, *xn, *qkv, *y, *h, *part, *scores, *logits; /* scratch */
};

static float *take(float **p, size_t n) {
  float *r = *p;
  *p += n;
  return r;
}

int tp_model_create(tp_model **out, const gpt2_model *full, const tp_world *w, char *err,
                    size_t errlen) {
  const gpt2_config *c = &full->config;
  const int N = w->nranks, r = w->rank, C = c->channels, L = c->num_layers;
  *out = NULL;
  if (c->num_heads % N || (4 * C) % N) {
    snprintf(err, errlen, "tensor parallelism over %d ranks needs the head count (%d) and "
             "the MLP width (%d) divisible by it", N, c->num_heads, 4 * C);
    return -1;
  }
  tp_model *m = calloc(1, sizeof *m);
  if (!m) goto oom;
  m->cfg = *c;
  m->w = w;
  m->cl = C / N;
  m->fl = 4 * C / N;
  m->vs = (c->vocab_size + N - 1) / N;
  m->v_lo = r * m->vs;
  m->v_n = c->vocab_size - m->v_lo < m->vs ? c->vocab_size - m->v_lo : m->vs;
  if (m->v_n < 0) m->v_n = 0;
  const size_t cl = m->cl, fl = m->fl, Cs = C;
  size_t per_layer = 4 * Cs + 3 * cl * Cs + 3 * cl + Cs * cl + Cs + fl * Cs + fl + Cs * fl + Cs;
  size_t total = (size_t)m->vs * Cs + (size_t)c->max_seq_len * Cs + 2 * Cs + L * per_layer;
  m->mem = calloc(total, sizeof(float));
  m->layers = calloc((size_t)L, sizeof *m->layers);
  if (!m->mem || !m->layers) goto oom;
  float *p = m->mem;
  const gpt2_layout *lo = &full->layout;
  m->wte = take(&p, (size_t)m->vs * Cs);
  if (m->v_n > 0)
    memcpy(m->wte, full->params + lo->wte + (size_t)m->v_lo * Cs, (size_t)m->v_n * Cs * 4);
  m->wpe = take(&p, (size_t)c->max_seq_len * Cs);
  memcpy(m->wpe, full->params + lo->wpe, (size_t)c->max_seq_len * Cs * 4);
  m->lnfw = take(&p, Cs);
  m->lnfb = take(&p, Cs);
  memcpy(m->lnfw, full->params + lo->lnfw, Cs * 4);
  memcpy(m->lnfb, full->params + lo->lnfb, Cs * 4);
  for (int l = 0; l < L; l++) {
    gpt2_layer f = gpt2_layer_at(lo, full->params, l);
    tp_layer *t = &m->layers[l];
    t->ln1w = take(&p, Cs), t->ln1b = take(&p, Cs), t->ln2w = take(&p, Cs), t->ln2b = take(&p, Cs);
    memcpy(t->ln1w, f.ln1w, Cs * 4), memcpy(t->ln1b, f.ln1b, Cs * 4);
    memcpy(t->ln2w, f.ln2w, Cs * 4), memcpy(t->ln2b, f.ln2b, Cs * 4);
    t->qkvw = take(&p, 3 * cl * Cs), t->qkvb = take(&p, 3 * cl);
    for (int part = 0; part < 3; part++) { /* q, k, v: this rank's heads of each */
      size_t row = (size_t)part * Cs + (size_t)r * cl;
      memcpy(t->qkvw + part * cl * Cs, f.qkvw + row * Cs, cl * Cs * 4);
      memcpy(t->qkvb + part * cl, f.qkvb + row, cl * 4);
    }
    t->attprojw = take(&p, Cs * cl), t->attprojb = take(&p, Cs);
    for (size_t o = 0; o < Cs; o++) memcpy(t->attprojw + o * cl, f.attprojw + o * Cs + r * cl, cl * 4);
    memcpy(t->attprojb, f.attprojb, Cs * 4);
    t->fcw = take(&p, fl * Cs), t->fcb = take(&p, fl);
    memcpy(t->fcw, f.fcw + (size_t)r * fl * Cs, fl * Cs * 4);
    memcpy(t->fcb, f.fcb + (size_t)r * fl, fl * 4);
    t->fcprojw = take(&p, Cs * fl), t->fcprojb = take(&p, Cs);
    for (size_t o = 0; o < Cs; o++)
      memcpy(t->fcprojw + o * fl, f.fcprojw + o * 4 * Cs + r * fl, fl * 4);
    memcpy(t->fcprojb, f.fcprojb, Cs * 4);
  }
  *out = m;
  return 0;
oom:
  tp_model_free(m);
  snprintf(err, errlen, "out of memory for this rank's shard of the model");
  return -1;
}

void tp_model_free(tp_model *m) {
  if (!m) return;
  free(m->mem);
  free(m->layers);
  free(m);
}

int tp_kv_create(tp_kv **out, const tp_model *m, int max_len, char *err, size_t errlen) {
  const size_t C = m->cfg.channels, cache = (size_t)m->cfg.num_layers * max_len * m->cl;
  tp_kv *kv = calloc(1, sizeof *kv);
  if (kv) {
    kv->k = malloc(cache * 4), kv->v = malloc(cache * 4);
    kv->x = malloc(C * 4), kv->xn = malloc(C * 4), kv->part = malloc(C * 4);
    kv->qkv = malloc(3 * m->cl * 4), kv->y = malloc(m->cl * 4), kv->h = malloc(m->fl * 4);
    kv->scores = malloc((size_t)max_len * 4);
    kv->logits = malloc((size_t)m->vs * m->w->nranks * 4);
  }
  if (!kv || !kv->k || !kv->v || !kv->x || !kv->xn || !kv->part || !kv->qkv || !kv->y ||
      !kv->h || !kv->scores || !kv->logits) {
    tp_kv_free(kv);
    snprintf(err, errlen, "out of memory for a key/value cache of %d positions", max_len);
    return -1;
  }
  kv->max_len = max_len;
  *out = kv;
  return 0;
}

void tp_kv_free(tp_kv *kv) {
  if (!kv) return;
  free(kv->k), free(kv->v), free(kv->x), free(kv->xn), free(kv->part);
  free(kv->qkv), free(kv->y), free(kv->h), free(kv->scores), free(kv->logits);
  free(kv);
}

int tp_kv_length(const tp_kv *kv) { return kv->len; }
void tp_kv_truncate(tp_kv *kv, int len) {
  if (len >= 0 && len < kv->len) kv->len = len;
}

/* x += allreduce(part) + bias: the row-split projection's partial sums combined */
static int reduce_add(const tp_model *m, float *x, float *part, const float *bias, int C) {
  if (mlcommAllReduce(part, part, (size_t)C, mlcommFloat32, mlcommSum, m->w->comm) !=
      mlcommSuccess)
    return -1;
  for (int c = 0; c < C; c++) x[c] += part[c] + bias[c];
  return 0;
}

int tp_forward_token(const tp_model *m, tp_kv *kv, int token, float *logits) {
  const int C = m->cfg.channels, hs = C / m->cfg.num_heads, nh = m->cl / hs;
  const int cl = m->cl, L = m->cfg.num_layers, pos = kv->len;
  if (pos >= kv->max_len || token < 0 || token >= m->cfg.vocab_size) return -1;
  float mean, rstd;

  /* embedding: the owner of the row contributes it, the others zeros */
  if (token >= m->v_lo && token < m->v_lo + m->v_n)
    memcpy(kv->x, m->wte + (size_t)(token - m->v_lo) * C, (size_t)C * 4);
  else
    memset(kv->x, 0, (size_t)C * 4);
  if (mlcommAllReduce(kv->x, kv->x, (size_t)C, mlcommFloat32, mlcommSum, m->w->comm) !=
      mlcommSuccess)
    return -1;
  for (int c = 0; c < C; c++) kv->x[c] += m->wpe[(size_t)pos * C + c];

  for (int l = 0; l < L; l++) {
    const tp_layer *w = &m->layers[l];
    float *kc = kv->k + (size_t)l * kv->max_len * cl, *vc = kv->v + (size_t)l * kv->max_len * cl;
    gpt2_layernorm_forward(kv->xn, &mean, &rstd, kv->x, w->ln1w, w->ln1b, 1, C);
    gpt2_matvec(kv->qkv, kv->xn, w->qkvw, w->qkvb, C, 3 * cl);
    memcpy(kc + (size_t)pos * cl, kv->qkv + cl, (size_t)cl * 4);
    memcpy(vc + (size_t)pos * cl, kv->qkv + 2 * cl, (size_t)cl * 4);
    gpt2_attention_token(kv->y, kv->qkv, kc, vc, pos, nh, hs, cl, kv->scores);
    gpt2_matvec(kv->part, kv->y, w->attprojw, NULL, cl, C);
    if (reduce_add(m, kv->x, kv->part, w->attprojb, C) != 0) return -1;

    gpt2_layernorm_forward(kv->xn, &mean, &rstd, kv->x, w->ln2w, w->ln2b, 1, C);
    gpt2_matvec(kv->h, kv->xn, w->fcw, w->fcb, C, m->fl);
    gpt2_gelu_forward(kv->h, kv->h, m->fl);
    gpt2_matvec(kv->part, kv->h, w->fcprojw, NULL, m->fl, C);
    if (reduce_add(m, kv->x, kv->part, w->fcprojb, C) != 0) return -1;
  }
  gpt2_layernorm_forward(kv->xn, &mean, &rstd, kv->x, m->lnfw, m->lnfb, 1, C);
  gpt2_matvec(kv->logits + (size_t)m->w->rank * m->vs, kv->xn, m->wte, NULL, C, m->vs);
  if (mlcommAllGather(kv->logits + (size_t)m->w->rank * m->vs, kv->logits, (size_t)m->vs,
                      mlcommFloat32, m->w->comm) != mlcommSuccess)
    return -1;
  memcpy(logits, kv->logits, (size_t)m->cfg.vocab_size * 4);
  kv->len = pos + 1;
  return 0;
}
