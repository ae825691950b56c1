/*
 * test_model_checkpoint.c - llm.c checkpoints: a version-3 file written and read back is
 * bit-exact; the file holds llm.c's tensor order (checked against offsets computed here,
 * independently of checkpoint.c); a hand-made version-5 (bf16) file loads exactly; bf16
 * writing rounds to nearest even; bad files are refused with a sentence naming them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt2.h"
#include "test_model_ref.h"

static char dir[256];

static void path_of(char *out, size_t len, const char *name) {
  snprintf(out, len, "%s/%s", dir, name);
}

/* Each tensor in llm.c's file order: name, floats per layer (or in all), stacked? */
typedef struct {
  const char *name;
  size_t per_layer; /* 0: not per layer */
  size_t total;
} file_tensor;

static int llmc_order(const gpt2_config *c, file_tensor *t) {
  size_t C = c->channels, L = c->num_layers;
  file_tensor list[16] = {{"wte", 0, (size_t)c->padded_vocab_size * C},
                          {"wpe", 0, (size_t)c->max_seq_len * C},
                          {"ln1w", C, 0},
                          {"ln1b", C, 0},
                          {"qkvw", 3 * C * C, 0},
                          {"qkvb", 3 * C, 0},
                          {"attprojw", C * C, 0},
                          {"attprojb", C, 0},
                          {"ln2w", C, 0},
                          {"ln2b", C, 0},
                          {"fcw", 4 * C * C, 0},
                          {"fcb", 4 * C, 0},
                          {"fcprojw", 4 * C * C, 0},
                          {"fcprojb", C, 0},
                          {"lnfw", 0, C},
                          {"lnfb", 0, C}};
  for (int i = 0; i < 16; i++) {
    if (list[i].per_layer) list[i].total = list[i].per_layer * L;
    t[i] = list[i];
  }
  return 16;
}

/* Where tensor i (layer l) lives in the model's own buffer. */
static const float *model_tensor(const gpt2_model *m, int i, int l) {
  const gpt2_layout *lo = &m->layout;
  if (i == 0) return m->params + lo->wte;
  if (i == 1) return m->params + lo->wpe;
  if (i == 14) return m->params + lo->lnfw;
  if (i == 15) return m->params + lo->lnfb;
  gpt2_layer x = gpt2_layer_at(lo, m->params, l);
  const float *per[12] = {x.ln1w, x.ln1b, x.qkvw, x.qkvb, x.attprojw, x.attprojb,
                          x.ln2w, x.ln2b, x.fcw,  x.fcb,  x.fcprojw,  x.fcprojb};
  return per[i - 2];
}

static float bf16_bits_to_float(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint16_t round_bf16(float f) { /* nearest, ties to even; finite inputs */
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t lower = u & 0xffff, upper = u >> 16;
  if (lower > 0x8000 || (lower == 0x8000 && (upper & 1))) upper++;
  return (uint16_t)upper;
}

static void write_header(FILE *f, int version, const gpt2_config *c) {
  int32_t h[256] = {20240326,      version,      c->max_seq_len, c->vocab_size,
                    c->num_layers, c->num_heads, c->channels,    c->padded_vocab_size};
  fwrite(h, sizeof h, 1, f);
}

static void test_roundtrip_and_order(void) {
  gpt2_config cfg = {.max_seq_len = 12,
                     .vocab_size = 100,
                     .padded_vocab_size = 128,
                     .num_layers = 3,
                     .num_heads = 4,
                     .channels = 16};
  char err[512], path[512];
  gpt2_model m, back;
  EXPECT(gpt2_model_setup(&m, &cfg, err, sizeof err) == 0, "%s", err);
  size_t n = m.layout.num_params;
  m.params = malloc(n * 4);
  for (size_t i = 0; i < n; i++) m.params[i] = (float)(ref_uniform() * (1 + (i % 7) * 1e3));
  m.params[5] = 1e-42f; /* a denormal survives */
  path_of(path, sizeof path, "model_v3.bin");
  EXPECT(gpt2_checkpoint_write(path, &m, GPT2_CHECKPOINT_FP32, err, sizeof err) == 0, "%s", err);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  EXPECT(access(tmp, F_OK) != 0, "the temporary file was left behind");

  gpt2_config got;
  int version = 0;
  EXPECT(gpt2_checkpoint_read_config(path, &got, &version, err, sizeof err) == 0, "%s", err);
  EXPECT(memcmp(&got, &cfg, sizeof cfg) == 0 && version == 3, "header read back differs");
  EXPECT(gpt2_model_setup(&back, &got, err, sizeof err) == 0, "%s", err);
  back.params = malloc(n * 4);
  EXPECT(gpt2_checkpoint_read_params(path, &back, err, sizeof err) == 0, "%s", err);
  EXPECT(memcmp(back.params, m.params, n * 4) == 0, "fp32 round trip is not bit-exact");

  /* llm.c's order, from the raw file */
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  EXPECT(size == 1024 + (long)n * 4, "file size %ld, expected %ld", size, 1024 + (long)n * 4);
  float *raw = malloc(n * 4);
  fseek(f, 1024, SEEK_SET);
  EXPECT(fread(raw, 4, n, f) == n, "short read");
  fclose(f);
  file_tensor t[16];
  llmc_order(&cfg, t);
  size_t off = 0;
  for (int i = 0; i < 16; i++) {
    if (!t[i].per_layer) {
      EXPECT(memcmp(raw + off, model_tensor(&m, i, 0), t[i].total * 4) == 0,
             "file tensor %s is not the model's", t[i].name);
    } else {
      for (int l = 0; l < cfg.num_layers; l++)
        EXPECT(
            memcmp(raw + off + l * t[i].per_layer, model_tensor(&m, i, l), t[i].per_layer * 4) == 0,
            "file tensor %s layer %d is not the model's", t[i].name, l);
    }
    off += t[i].total;
  }
  EXPECT(off == n, "llm.c's tensors hold %zu floats, the model %zu", off, n);

  /* bf16: written rounded to nearest even, read back exactly */
  path_of(path, sizeof path, "model_v5.bin");
  EXPECT(gpt2_checkpoint_write(path, &m, GPT2_CHECKPOINT_BF16, err, sizeof err) == 0, "%s", err);
  EXPECT(gpt2_checkpoint_read_config(path, &got, &version, err, sizeof err) == 0 && version == 5,
         "bf16 header: %s", err);
  EXPECT(gpt2_checkpoint_read_params(path, &back, err, sizeof err) == 0, "%s", err);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    if (back.params[i] != bf16_bits_to_float(round_bf16(m.params[i]))) wrong++;
  EXPECT(wrong == 0, "%zu parameters not rounded to nearest even bf16", wrong);
  free(raw), free(m.params), free(back.params);
}

/* A version-5 file made here byte by byte, as llm.c writes it. */
static void test_handmade_bf16(void) {
  gpt2_config cfg = {.max_seq_len = 8,
                     .vocab_size = 130,
                     .padded_vocab_size = 256,
                     .num_layers = 2,
                     .num_heads = 2,
                     .channels = 8};
  char err[512], path[512];
  gpt2_model m;
  EXPECT(gpt2_model_setup(&m, &cfg, err, sizeof err) == 0, "%s", err);
  size_t n = m.layout.num_params;
  uint16_t *bits = malloc(n * 2);
  for (size_t i = 0; i < n; i++) {
    bits[i] = (uint16_t)((ref_uniform() + 1) * 32767.0);
    if ((bits[i] & 0x7f80) == 0x7f80) bits[i] &= 0xbfff; /* no inf or NaN */
  }
  path_of(path, sizeof path, "handmade_v5.bin");
  FILE *f = fopen(path, "wb");
  write_header(f, 5, &cfg);
  fwrite(bits, 2, n, f);
  fclose(f);
  m.params = malloc(n * 4);
  EXPECT(gpt2_checkpoint_read_params(path, &m, err, sizeof err) == 0, "%s", err);
  /* the value at file position k belongs to the tensor and layer llm.c puts there */
  file_tensor t[16];
  llmc_order(&cfg, t);
  size_t off = 0, wrong = 0;
  for (int i = 0; i < 16; i++) {
    int layers = t[i].per_layer ? cfg.num_layers : 1;
    size_t each = t[i].per_layer ? t[i].per_layer : t[i].total;
    for (int l = 0; l < layers; l++)
      for (size_t j = 0; j < each; j++)
        if (model_tensor(&m, i, l)[j] != bf16_bits_to_float(bits[off + l * each + j])) wrong++;
    off += t[i].total;
  }
  EXPECT(wrong == 0, "%zu bf16 values loaded wrong", wrong);
  free(bits), free(m.params);
}

static void expect_refused(const char *name, const char *needle, const gpt2_model *m) {
  char err[512] = "", path[512];
  path_of(path, sizeof path, name);
  gpt2_config c;
  int rc = gpt2_checkpoint_read_config(path, &c, NULL, err, sizeof err);
  if (rc == 0 && m) rc = gpt2_checkpoint_read_params(path, m, err, sizeof err);
  EXPECT(rc != 0, "%s was accepted", name);
  EXPECT(strstr(err, name) != NULL, "%s: the message does not name the file: %s", name, err);
  EXPECT(strstr(err, needle) != NULL, "%s: the message does not say %s: %s", name, needle, err);
  printf("  refused: %s\n", err);
}

static void test_bad_files(void) {
  gpt2_config cfg = {.max_seq_len = 8,
                     .vocab_size = 100,
                     .padded_vocab_size = 128,
                     .num_layers = 1,
                     .num_heads = 2,
                     .channels = 8};
  char err[512], path[512];
  gpt2_model m;
  gpt2_model_setup(&m, &cfg, err, sizeof err);
  m.params = calloc(m.layout.num_params, 4);
  size_t bytes = 1024 + m.layout.num_params * 4;
  char *blob = calloc(1, bytes);
  struct {
    const char *name;
    int32_t magic, version, channels, heads;
    size_t size;
  } files[] = {
      {"magic.bin", 1234, 3, 8, 2, bytes},         {"version.bin", 20240326, 7, 8, 2, bytes},
      {"short.bin", 20240326, 3, 8, 2, bytes - 4}, {"heads.bin", 20240326, 3, 8, 3, bytes},
      {"header.bin", 20240326, 3, 8, 2, 100},
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    int32_t *h = (int32_t *)blob;
    memset(blob, 0, 1024);
    h[0] = files[i].magic, h[1] = files[i].version, h[2] = 8, h[3] = 100, h[4] = 1;
    h[5] = files[i].heads, h[6] = files[i].channels, h[7] = 128;
    path_of(path, sizeof path, files[i].name);
    FILE *f = fopen(path, "wb");
    fwrite(blob, 1, files[i].size, f);
    fclose(f);
  }
  expect_refused("magic.bin", "magic", NULL);
  expect_refused("version.bin", "version", NULL);
  expect_refused("short.bin", "bytes", NULL);
  expect_refused("heads.bin", "heads", NULL);
  expect_refused("header.bin", "header", NULL);
  expect_refused("missing.bin", "No such file", NULL);
  /* a good file of another shape */
  gpt2_config other = cfg;
  other.num_layers = 2;
  gpt2_model o;
  gpt2_model_setup(&o, &other, err, sizeof err);
  o.params = calloc(o.layout.num_params, 4);
  path_of(path, sizeof path, "other_shape.bin");
  EXPECT(gpt2_checkpoint_write(path, &o, 3, err, sizeof err) == 0, "%s", err);
  expect_refused("other_shape.bin", "does not match", &m);
  free(blob), free(m.params), free(o.params);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/gpt2_ckpt_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_roundtrip_and_order();
  test_handmade_bf16();
  test_bad_files();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  if (ref_failures) {
    fprintf(stderr, "%d checks failed\n", ref_failures);
    return 1;
  }
  printf("checkpoint tests passed\n");
  return 0;
}
