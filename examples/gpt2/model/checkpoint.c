/*
 * checkpoint.c - llm.c model files: a 256 x int32 header
 * [20240326, version, maxT, V, L, NH, C, Vp, 0...], then the sixteen tensors, each
 * stacked over layers, as fp32 (version 3) or bf16 (version 5). The model keeps its
 * parameters layer-major (gpt2.h), so reading and writing walk the same list of
 * (tensor, layer) slices in llm.c's order.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt2.h"

#define HEADER_INTS 256
#define IO_CHUNK 65536 /* floats converted per write/read of a bf16 file */

/* The slices in file order: each is (offset, count) in the layer-major buffer. */
typedef void (*slice_fn)(void *ctx, size_t offset, size_t count);

static void for_each_slice(const gpt2_model *m, slice_fn fn, void *ctx) {
  const gpt2_layout *lo = &m->layout;
  size_t C = (size_t)m->config.channels;
  const struct {
    size_t offset, count;
  } per_layer[] = {
      {lo->ln1w, C},
      {lo->ln1b, C},
      {lo->qkvw, 3 * C * C},
      {lo->qkvb, 3 * C},
      {lo->attprojw, C * C},
      {lo->attprojb, C},
      {lo->ln2w, C},
      {lo->ln2b, C},
      {lo->fcw, 4 * C * C},
      {lo->fcb, 4 * C},
      {lo->fcprojw, 4 * C * C},
      {lo->fcprojb, C},
  };
  fn(ctx, lo->wte, (size_t)m->config.padded_vocab_size * C);
  fn(ctx, lo->wpe, (size_t)m->config.max_seq_len * C);
  for (size_t t = 0; t < sizeof per_layer / sizeof per_layer[0]; t++)
    for (int l = 0; l < m->config.num_layers; l++)
      fn(ctx, lo->layers + (size_t)l * lo->layer_size + per_layer[t].offset, per_layer[t].count);
  fn(ctx, lo->lnfw, C);
  fn(ctx, lo->lnfb, C);
}

static float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even */
  return (uint16_t)(u >> 16);
}

/* ---------------------------------------------------------------- reading */

int gpt2_checkpoint_read_config(const char *path, gpt2_config *cfg, int *version, char *err,
                                size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open model checkpoint %s: %s", path, strerror(errno));
    return -1;
  }
  int32_t h[HEADER_INTS];
  size_t got = fread(h, sizeof(int32_t), HEADER_INTS, f);
  struct stat st;
  int stat_ok = fstat(fileno(f), &st) == 0;
  fclose(f);
  if (got != HEADER_INTS) {
    snprintf(err, errlen, "%s: too short for an llm.c checkpoint (no 1024-byte header)", path);
    return -1;
  }
  if (h[0] != GPT2_CHECKPOINT_MAGIC) {
    snprintf(err, errlen, "%s: not an llm.c model checkpoint (magic %d, expected %d)", path, h[0],
             GPT2_CHECKPOINT_MAGIC);
    return -1;
  }
  if (h[1] != GPT2_CHECKPOINT_FP32 && h[1] != GPT2_CHECKPOINT_BF16) {
    snprintf(err, errlen, "%s: checkpoint version %d is not supported (3 = fp32 and 5 = bf16 are)",
             path, h[1]);
    return -1;
  }
  gpt2_config c = {.max_seq_len = h[2],
                   .vocab_size = h[3],
                   .num_layers = h[4],
                   .num_heads = h[5],
                   .channels = h[6],
                   .padded_vocab_size = h[7]};
  char why[256];
  if (gpt2_config_check(&c, why, sizeof why) != 0) {
    snprintf(err, errlen, "%s: bad shape in the header: %s", path, why);
    return -1;
  }
  gpt2_layout lo;
  gpt2_layout_init(&lo, &c);
  size_t elem = h[1] == GPT2_CHECKPOINT_FP32 ? 4 : 2;
  long long want = (long long)(HEADER_INTS * 4 + lo.num_params * elem);
  if (stat_ok && (long long)st.st_size != want) {
    snprintf(err, errlen,
             "%s: file is %lld bytes but its header (L=%d C=%d NH=%d maxT=%d Vp=%d, %s) needs "
             "%lld; truncated or not a checkpoint",
             path, (long long)st.st_size, c.num_layers, c.channels, c.num_heads, c.max_seq_len,
             c.padded_vocab_size, elem == 4 ? "fp32" : "bf16", want);
    return -1;
  }
  *cfg = c;
  if (version) *version = h[1];
  return 0;
}

struct io_ctx {
  FILE *f;
  float *params;
  int bf16;
  uint16_t *buf;
  int failed;
};

static void read_slice(void *vctx, size_t offset, size_t count) {
  struct io_ctx *x = vctx;
  if (x->failed) return;
  float *dst = x->params + offset;
  if (!x->bf16) {
    if (fread(dst, sizeof(float), count, x->f) != count) x->failed = 1;
    return;
  }
  for (size_t i = 0; i < count; i += IO_CHUNK) {
    size_t n = count - i < IO_CHUNK ? count - i : IO_CHUNK;
    if (fread(x->buf, sizeof(uint16_t), n, x->f) != n) {
      x->failed = 1;
      return;
    }
    for (size_t j = 0; j < n; j++) dst[i + j] = bf16_to_f32(x->buf[j]);
  }
}

/* A shard holds slices of the file's tensors at other shapes; the file is the whole model's. */
static int refuse_shard(const gpt2_model *m, const char *path, char *err, size_t errlen) {
  if (!m->tp) return 0;
  snprintf(err, errlen, "%s: the model is rank %d's shard of %d; checkpoints hold the whole model",
           path, m->tp->rank, m->tp->nranks);
  return -1;
}

int gpt2_checkpoint_read_params(const char *path, const gpt2_model *m, char *err, size_t errlen) {
  gpt2_config c;
  int version;
  if (refuse_shard(m, path, err, errlen) != 0) return -1;
  if (gpt2_checkpoint_read_config(path, &c, &version, err, errlen) != 0) return -1;
  if (memcmp(&c, &m->config, sizeof c) != 0) {
    snprintf(err, errlen,
             "%s: shape L=%d C=%d NH=%d maxT=%d V=%d does not match the model's L=%d C=%d "
             "NH=%d maxT=%d V=%d",
             path, c.num_layers, c.channels, c.num_heads, c.max_seq_len, c.vocab_size,
             m->config.num_layers, m->config.channels, m->config.num_heads, m->config.max_seq_len,
             m->config.vocab_size);
    return -1;
  }
  struct io_ctx x = {
      .f = fopen(path, "rb"), .params = m->params, .bf16 = version == GPT2_CHECKPOINT_BF16};
  if (!x.f) {
    snprintf(err, errlen, "cannot open model checkpoint %s: %s", path, strerror(errno));
    return -1;
  }
  if (x.bf16 && !(x.buf = malloc(IO_CHUNK * sizeof(uint16_t)))) x.failed = 1;
  if (!x.failed && fseek(x.f, HEADER_INTS * 4, SEEK_SET) != 0) x.failed = 1;
  if (!x.failed) for_each_slice(m, read_slice, &x);
  int failed = x.failed || ferror(x.f);
  fclose(x.f);
  free(x.buf);
  if (failed) {
    snprintf(err, errlen, "%s: reading the parameters failed (file changed or unreadable)", path);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- writing */

static void write_slice(void *vctx, size_t offset, size_t count) {
  struct io_ctx *x = vctx;
  if (x->failed) return;
  const float *src = x->params + offset;
  if (!x->bf16) {
    if (fwrite(src, sizeof(float), count, x->f) != count) x->failed = 1;
    return;
  }
  for (size_t i = 0; i < count; i += IO_CHUNK) {
    size_t n = count - i < IO_CHUNK ? count - i : IO_CHUNK;
    for (size_t j = 0; j < n; j++) x->buf[j] = f32_to_bf16(src[i + j]);
    if (fwrite(x->buf, sizeof(uint16_t), n, x->f) != n) {
      x->failed = 1;
      return;
    }
  }
}

int gpt2_checkpoint_write(const char *path, const gpt2_model *m, int version, char *err,
                          size_t errlen) {
  if (version != GPT2_CHECKPOINT_FP32 && version != GPT2_CHECKPOINT_BF16) {
    snprintf(err, errlen, "checkpoint version %d cannot be written (3 = fp32, 5 = bf16)", version);
    return -1;
  }
  if (refuse_shard(m, path, err, errlen) != 0) return -1;
  size_t tlen = strlen(path) + 5;
  char *tmp = malloc(tlen);
  if (!tmp) {
    snprintf(err, errlen, "out of memory writing %s", path);
    return -1;
  }
  snprintf(tmp, tlen, "%s.tmp", path);
  struct io_ctx x = {
      .f = fopen(tmp, "wb"), .params = m->params, .bf16 = version == GPT2_CHECKPOINT_BF16};
  if (!x.f) {
    snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  int32_t h[HEADER_INTS] = {0};
  h[0] = GPT2_CHECKPOINT_MAGIC;
  h[1] = version;
  h[2] = m->config.max_seq_len;
  h[3] = m->config.vocab_size;
  h[4] = m->config.num_layers;
  h[5] = m->config.num_heads;
  h[6] = m->config.channels;
  h[7] = m->config.padded_vocab_size;
  if (x.bf16 && !(x.buf = malloc(IO_CHUNK * sizeof(uint16_t)))) x.failed = 1;
  if (!x.failed && fwrite(h, sizeof h, 1, x.f) != 1) x.failed = 1;
  if (!x.failed) for_each_slice(m, write_slice, &x);
  int saved_errno = errno;
  if (fflush(x.f) != 0 || fsync(fileno(x.f)) != 0) x.failed = 1, saved_errno = errno;
  if (fclose(x.f) != 0 && !x.failed) x.failed = 1, saved_errno = errno;
  free(x.buf);
  if (x.failed) {
    snprintf(err, errlen, "writing %s failed: %s", tmp, strerror(saved_errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}
