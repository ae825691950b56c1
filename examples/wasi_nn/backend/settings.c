/*
 * settings.c - the JSON settings, parsed with cJSON. Each key has one row in a table
 * (its kind, range and field), so the checks and the error sentence are written once.
 */
#include "settings.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

void settings_default(settings *s) {
  memset(s, 0, sizeof *s);
  s->n_predict = 512;
  s->batch_size = 512;
  s->temp = 0.8f;
  s->top_p = 0.95f;
  s->top_k = 40;
  s->repeat_penalty = 1.1f;
  s->repeat_last_n = 64;
  s->seed = -1;
}

typedef enum { K_INT, K_FLOAT, K_BOOL, K_STOPS, K_PATH } kind;

typedef struct {
  const char *key;
  kind kind;
  double lo, hi;
  size_t offset;
  const char *range; /* words for the error sentence */
} key_spec;

#define F(field) offsetof(settings, field)
static const key_spec keys[] = {
    {"n-predict", K_INT, 1, 1048576, F(n_predict), "an integer from 1 to 1048576"},
    {"ctx-size", K_INT, 0, 1048576, F(ctx_size), "an integer from 0 (the model's) to 1048576"},
    {"batch-size", K_INT, 1, 1048576, F(batch_size), "an integer from 1 to 1048576"},
    {"threads", K_INT, 0, 1024, F(threads), "an integer from 0 (default) to 1024"},
    {"temp", K_FLOAT, 0, 100, F(temp), "a number from 0 (greedy) to 100"},
    {"top-p", K_FLOAT, 0, 1, F(top_p), "a number above 0 and at most 1"},
    {"top-k", K_INT, 0, 1048576, F(top_k), "an integer from 0 (off) to 1048576"},
    {"repeat-penalty", K_FLOAT, 0, 100, F(repeat_penalty), "a number above 0 and at most 100"},
    {"repeat-last-n", K_INT, 0, 1048576, F(repeat_last_n), "an integer from 0 to 1048576"},
    {"presence-penalty", K_FLOAT, -100, 100, F(presence_penalty), "a number from -100 to 100"},
    {"frequency-penalty", K_FLOAT, -100, 100, F(frequency_penalty), "a number from -100 to 100"},
    {"seed", K_INT, -1, 4294967295.0, F(seed), "an integer from -1 (random) to 4294967295"},
    {"reverse-prompt", K_STOPS, 0, 0, 0,
     "a string of 1 to 64 bytes, or an array of at most 8 such strings"},
    {"enable-log", K_BOOL, 0, 0, F(enable_log), "true or false"},
    {"enable-debug-log", K_BOOL, 0, 0, F(enable_debug_log), "true or false"},
    {"stream-stdout", K_BOOL, 0, 0, F(stream_stdout), "true or false"},
    {"n-gpu-layers", K_INT, 0, 0, 0, "0 (this backend runs on the CPU only)"},
    {"tokenizer", K_PATH, 0, 0, F(tokenizer), "a path to an llm.c tokenizer file"},
};
#undef F

static int bad(const cJSON *item, const key_spec *k, char *err, size_t errlen) {
  char *v = cJSON_PrintUnformatted(item);
  snprintf(err, errlen, "config key \"%s\" has the value %.80s%s: it must be %s", k->key,
           v ? v : "?", v && strlen(v) > 80 ? "..." : "", k->range);
  cJSON_free(v);
  return -1;
}

static int apply_one(settings *s, const cJSON *item, const key_spec *k, char *err, size_t errlen) {
  char *field = (char *)s + k->offset;
  switch (k->kind) {
  case K_INT: {
    if (!cJSON_IsNumber(item)) return bad(item, k, err, errlen);
    double d = item->valuedouble;
    if (d != floor(d) || d < k->lo || d > k->hi) return bad(item, k, err, errlen);
    if (!strcmp(k->key, "n-gpu-layers")) return 0;
    if (!strcmp(k->key, "seed")) *(int64_t *)(void *)field = (int64_t)d;
    else *(int *)(void *)field = (int)d;
    return 0;
  }
  case K_FLOAT: {
    if (!cJSON_IsNumber(item)) return bad(item, k, err, errlen);
    double d = item->valuedouble;
    int open_lo = !strcmp(k->key, "top-p") || !strcmp(k->key, "repeat-penalty");
    if (!isfinite(d) || d < k->lo || d > k->hi || (open_lo && d <= k->lo))
      return bad(item, k, err, errlen);
    *(float *)(void *)field = (float)d;
    return 0;
  }
  case K_BOOL:
    if (!cJSON_IsBool(item)) return bad(item, k, err, errlen);
    *(int *)(void *)field = cJSON_IsTrue(item);
    return 0;
  case K_PATH:
    if (!cJSON_IsString(item) || !item->valuestring[0] ||
        strlen(item->valuestring) >= sizeof s->tokenizer)
      return bad(item, k, err, errlen);
    strcpy(s->tokenizer, item->valuestring);
    return 0;
  case K_STOPS: {
    const cJSON *e;
    int n = 0;
    if (cJSON_IsString(item)) {
      if (!item->valuestring[0] || strlen(item->valuestring) > SETTINGS_MAX_STOP_LEN)
        return bad(item, k, err, errlen);
      strcpy(s->stops[0], item->valuestring);
      s->n_stops = 1;
      return 0;
    }
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > SETTINGS_MAX_STOPS)
      return bad(item, k, err, errlen);
    cJSON_ArrayForEach(e, item) {
      if (!cJSON_IsString(e) || !e->valuestring[0] ||
          strlen(e->valuestring) > SETTINGS_MAX_STOP_LEN)
        return bad(item, k, err, errlen);
    }
    cJSON_ArrayForEach(e, item) strcpy(s->stops[n++], e->valuestring);
    s->n_stops = n;
    return 0;
  }
  }
  return -1;
}

int settings_apply_json(settings *s, const char *json, size_t len, int load_time, char *err,
                        size_t errlen) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root || !cJSON_IsObject(root)) {
    snprintf(err, errlen, "the config is not a JSON object (%zu bytes): write it as "
             "{\"n-predict\": 32, \"temp\": 0}", len);
    cJSON_Delete(root);
    return -1;
  }
  settings t = *s; /* all or nothing */
  const cJSON *item;
  int rc = 0;
  cJSON_ArrayForEach(item, root) {
    const key_spec *k = NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
      if (item->string && !strcmp(item->string, keys[i].key)) k = &keys[i];
    if (!k || (k->kind == K_PATH && !load_time)) {
      snprintf(err, errlen, "config key \"%.64s\" is not one this backend knows%s: the keys "
               "are n-predict, ctx-size, batch-size, threads, temp, top-p, top-k, "
               "repeat-penalty, repeat-last-n, presence-penalty, frequency-penalty, seed, "
               "reverse-prompt, enable-log, enable-debug-log, stream-stdout, n-gpu-layers "
               "and (when loading) tokenizer",
               item->string ? item->string : "", k ? " after loading" : "");
      rc = -1;
      break;
    }
    if ((rc = apply_one(&t, item, k, err, errlen)) != 0) break;
  }
  cJSON_Delete(root);
  if (rc == 0) *s = t;
  return rc;
}
