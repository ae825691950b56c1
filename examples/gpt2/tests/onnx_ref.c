/*
 * onnx_ref.c - the model library's side of the ONNX export test (test_export_onnx.py):
 *   onnx_ref make MODEL.bin fp32|bf16 L NH C maxT V SEED   a random checkpoint (llm.c's
 *       initialisation plus noise, so layer norms and biases are not trivial)
 *   onnx_ref logits MODEL.bin IDS.bin B T OUT.bin          the logits of each row of the
 *       int32 [B,T] ids, [B,T,V] float32, from gpt2_forward_token (the generation path)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"

static int die(const char *msg) {
  fprintf(stderr, "onnx_ref: %s\n", msg);
  return 1;
}

static int make(char **a) {
  int L = atoi(a[1]), NH = atoi(a[2]), C = atoi(a[3]), T = atoi(a[4]), V = atoi(a[5]);
  gpt2_config cfg = {T, V, gpt2_padded_vocab(V), L, NH, C};
  gpt2_model m;
  char err[256];
  if (gpt2_model_setup(&m, &cfg, err, sizeof err) != 0) return die(err);
  m.params = malloc(m.layout.num_params * sizeof(float));
  if (!m.params) return die("out of memory");
  uint64_t s = strtoull(a[6], NULL, 10);
  gpt2_init_params(&m, s);
  for (size_t i = 0; i < m.layout.num_params; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    m.params[i] += ((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.1f;
  }
  int version = strcmp(a[0], "bf16") == 0 ? GPT2_CHECKPOINT_BF16 : GPT2_CHECKPOINT_FP32;
  if (gpt2_checkpoint_write(a[-1], &m, version, err, sizeof err) != 0) return die(err);
  free(m.params);
  return 0;
}

static int logits(const char *model, const char *ids_path, int B, int T, const char *out_path) {
  gpt2_config cfg;
  gpt2_model m;
  int version;
  char err[512];
  if (gpt2_checkpoint_read_config(model, &cfg, &version, err, sizeof err) != 0 ||
      gpt2_model_setup(&m, &cfg, err, sizeof err) != 0)
    return die(err);
  m.params = malloc(m.layout.num_params * sizeof(float));
  if (!m.params || gpt2_checkpoint_read_params(model, &m, err, sizeof err) != 0) return die(err);
  int V = cfg.vocab_size, *ids = malloc((size_t)B * T * sizeof(int));
  float *out = malloc((size_t)B * T * V * sizeof(float));
  FILE *f = fopen(ids_path, "rb");
  if (!ids || !out || !f || fread(ids, sizeof(int), (size_t)B * T, f) != (size_t)B * T)
    return die("cannot read the ids");
  fclose(f);
  for (int b = 0; b < B; b++) {
    gpt2_kv *kv;
    if (gpt2_kv_create(&kv, &cfg, T, err, sizeof err) != 0) return die(err);
    for (int t = 0; t < T; t++)
      if (gpt2_forward_token(&m, kv, ids[b * T + t], out + ((size_t)b * T + t) * V) != 0)
        return die("the forward pass failed");
    gpt2_kv_free(kv);
  }
  f = fopen(out_path, "wb");
  if (!f || fwrite(out, sizeof(float), (size_t)B * T * V, f) != (size_t)B * T * V || fclose(f))
    return die("cannot write the logits");
  free(ids), free(out), free(m.params);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 10 && strcmp(argv[1], "make") == 0) return make(argv + 3);
  if (argc == 7 && strcmp(argv[1], "logits") == 0)
    return logits(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), argv[6]);
  fprintf(stderr, "usage: onnx_ref make MODEL.bin fp32|bf16 L NH C maxT V SEED\n"
                  "       onnx_ref logits MODEL.bin IDS.bin B T OUT.bin\n");
  return 2;
}
