/*
 * settings.h - generation settings and their JSON form (hyphenated keys, as WasmEdge's
 * GGML plugin and WAMR's llama.cpp backend take them).
 */
#ifndef WASI_NN_SETTINGS_H
#define WASI_NN_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#define SETTINGS_MAX_STOPS 8     /* reverse-prompt strings */
#define SETTINGS_MAX_STOP_LEN 64 /* bytes in one */

typedef struct {
  int n_predict;      /* tokens to generate per compute, 1..1048576; default 512 */
  int ctx_size;       /* positions in the KV cache, 0 = the model's maxT */
  int batch_size;     /* accepted for compatibility; the prompt runs a token at a time */
  int threads;        /* OpenMP threads, 0 = OpenMP's default */
  float temp;         /* 0 = greedy */
  float top_p;        /* (0, 1] */
  int top_k;          /* 0 = off */
  float repeat_penalty, presence_penalty, frequency_penalty;
  int repeat_last_n;  /* how many recent tokens the penalties look at */
  int64_t seed;       /* -1 = from the clock */
  int n_stops;
  char stops[SETTINGS_MAX_STOPS][SETTINGS_MAX_STOP_LEN + 1];
  int enable_log, enable_debug_log, stream_stdout;
  char tokenizer[4096]; /* path, load time only ("" = beside the model) */
} settings;

void settings_default(settings *s);

/* Applies the keys of a JSON object (len bytes, not NUL-terminated) over s. Every key is
 * checked; on an unknown key, a wrong type or a value out of range nothing is changed,
 * -1 is returned and err holds a sentence naming the key, the value and what is
 * allowed. load_time says whether "tokenizer" is accepted. */
int settings_apply_json(settings *s, const char *json, size_t len, int load_time, char *err,
                        size_t errlen);

#endif
