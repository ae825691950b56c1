/* llm.c tokenizer file: load (versions 1 and 2), save (version 2), decode. */
#include "tokenizer.h"
#include "tokenizer_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* All tokens live in one blob, each followed by a NUL so decode can hand out C strings. */
struct gpt2_tokenizer {
  uint32_t vocab_size;
  uint32_t eot;
  char *blob;
  uint32_t *offset; /* vocab_size + 1 offsets into blob; token i has offset[i+1]-offset[i]-1 bytes */
};

void gpt2_set_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

uint32_t gpt2_byte_to_unicode(uint8_t b) {
  /* Bytes that print as themselves in Latin-1 keep their code point; the remaining 68
   * (controls, space, DEL, NBSP, soft hyphen...) get U+0100 onwards, in byte order. */
  int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
  if (printable) return b;
  uint32_t n = 0;
  for (uint32_t c = 0; c < b; c++) {
    int p = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE);
    if (!p) n++;
  }
  return 256 + n;
}

static int alloc_tokenizer(gpt2_tokenizer **out, uint32_t n, size_t blob_bytes, char *err,
                           size_t errlen) {
  gpt2_tokenizer *t = calloc(1, sizeof(*t));
  if (t) {
    t->blob = malloc(blob_bytes ? blob_bytes : 1);
    t->offset = malloc(((size_t)n + 1) * sizeof(uint32_t));
  }
  if (t == NULL || t->blob == NULL || t->offset == NULL) {
    gpt2_tokenizer_free(t);
    gpt2_set_err(err, errlen, "out of memory for a tokenizer of %u tokens", n);
    return -1;
  }
  t->vocab_size = n;
  *out = t;
  return 0;
}

int gpt2_tokenizer_from_vocab(gpt2_tokenizer **out, const char *const *tokens,
                              const size_t *lens, uint32_t n, uint32_t eot, char *err,
                              size_t errlen) {
  *out = NULL;
  if (n == 0 || eot >= n) {
    gpt2_set_err(err, errlen, "vocabulary of %u tokens has no end-of-text id %u", n, eot);
    return -1;
  }
  size_t blob = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (lens[i] < 1 || lens[i] > 255) {
      gpt2_set_err(err, errlen, "token %u has %zu bytes; the tokenizer file holds 1 to 255",
                   i, lens[i]);
      return -1;
    }
    blob += lens[i] + 1;
  }
  if (blob > UINT32_MAX) {
    gpt2_set_err(err, errlen, "vocabulary of %u tokens is too large", n);
    return -1;
  }
  gpt2_tokenizer *t;
  if (alloc_tokenizer(&t, n, blob, err, errlen) != 0) return -1;
  t->eot = eot;
  uint32_t pos = 0;
  for (uint32_t i = 0; i < n; i++) {
    t->offset[i] = pos;
    memcpy(t->blob + pos, tokens[i], lens[i]);
    pos += (uint32_t)lens[i];
    t->blob[pos++] = '\0';
  }
  t->offset[n] = pos;
  *out = t;
  return 0;
}

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

int gpt2_tokenizer_load(gpt2_tokenizer **out, const char *path, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    gpt2_set_err(err, errlen, "%s: cannot open tokenizer file: %s", path, strerror(errno));
    return -1;
  }
  gpt2_tokenizer *t = NULL;
  unsigned char header[GPT2_TOKENIZER_HEADER_WORDS * 4];
  if (fread(header, 1, sizeof(header), f) != sizeof(header)) {
    gpt2_set_err(err, errlen, "%s: shorter than the 1024-byte tokenizer header", path);
    goto fail;
  }
  uint32_t magic = le32(header), version = le32(header + 4), n = le32(header + 8);
  if (magic != GPT2_TOKENIZER_MAGIC) {
    gpt2_set_err(err, errlen, "%s: bad magic %u (an llm.c tokenizer file starts with %u)",
                 path, magic, GPT2_TOKENIZER_MAGIC);
    goto fail;
  }
  uint32_t eot;
  if (version == 1) {
    eot = GPT2_TOKENIZER_V1_EOT;
  } else if (version == 2) {
    eot = le32(header + 12);
  } else {
    gpt2_set_err(err, errlen, "%s: tokenizer file version %u is not supported (1 or 2)", path,
                 version);
    goto fail;
  }
  if (n == 0 || n > (1u << 24) || eot >= n) {
    gpt2_set_err(err, errlen, "%s: vocab_size %u with end-of-text id %u is not valid", path,
                 n, eot);
    goto fail;
  }
  /* Each token takes at most 256 bytes on disk; read them into a worst-case blob. */
  if (alloc_tokenizer(&t, n, (size_t)n * 256, err, errlen) != 0) goto fail;
  t->eot = eot;
  uint32_t pos = 0;
  for (uint32_t i = 0; i < n; i++) {
    int len = fgetc(f);
    if (len == EOF) {
      gpt2_set_err(err, errlen, "%s: ends after %u of %u tokens", path, i, n);
      goto fail;
    }
    if (len == 0) {
      gpt2_set_err(err, errlen, "%s: token %u has length 0", path, i);
      goto fail;
    }
    t->offset[i] = pos;
    if (fread(t->blob + pos, 1, (size_t)len, f) != (size_t)len) {
      gpt2_set_err(err, errlen, "%s: ends inside token %u of %u", path, i, n);
      goto fail;
    }
    pos += (uint32_t)len;
    t->blob[pos++] = '\0';
  }
  t->offset[n] = pos;
  if (fgetc(f) != EOF) {
    gpt2_set_err(err, errlen, "%s: has bytes after its %u tokens", path, n);
    goto fail;
  }
  fclose(f);
  char *shrunk = realloc(t->blob, pos);
  if (shrunk) t->blob = shrunk;
  *out = t;
  return 0;
fail:
  fclose(f);
  gpt2_tokenizer_free(t);
  return -1;
}

int gpt2_tokenizer_save(const gpt2_tokenizer *t, const char *path, char *err, size_t errlen) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (tmp == NULL) {
    gpt2_set_err(err, errlen, "%s: out of memory", path);
    return -1;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  FILE *f = fopen(tmp, "wb");
  if (f == NULL) {
    gpt2_set_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  unsigned char header[GPT2_TOKENIZER_HEADER_WORDS * 4] = {0};
  put_le32(header, GPT2_TOKENIZER_MAGIC);
  put_le32(header + 4, 2);
  put_le32(header + 8, t->vocab_size);
  put_le32(header + 12, t->eot);
  int ok = fwrite(header, 1, sizeof(header), f) == sizeof(header);
  for (uint32_t i = 0; ok && i < t->vocab_size; i++) {
    size_t len;
    const char *bytes = gpt2_tokenizer_decode(t, i, &len);
    ok = fputc((int)len, f) != EOF && fwrite(bytes, 1, len, f) == len;
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    gpt2_set_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

void gpt2_tokenizer_free(gpt2_tokenizer *t) {
  if (t == NULL) return;
  free(t->blob);
  free(t->offset);
  free(t);
}

uint32_t gpt2_tokenizer_vocab_size(const gpt2_tokenizer *t) { return t->vocab_size; }

uint32_t gpt2_tokenizer_eot(const gpt2_tokenizer *t) { return t->eot; }

const char *gpt2_tokenizer_decode(const gpt2_tokenizer *t, uint32_t id, size_t *len) {
  if (t == NULL || id >= t->vocab_size) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = t->offset[id + 1] - t->offset[id] - 1;
  return t->blob + t->offset[id];
}

size_t gpt2_tokenizer_decode_all(const gpt2_tokenizer *t, const int *ids, size_t n,
                                 char *out, size_t cap) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *bytes = ids[i] < 0 ? NULL : gpt2_tokenizer_decode(t, (uint32_t)ids[i], &len);
    if (bytes == NULL) continue;
    if (total < cap) memcpy(out + total, bytes, len < cap - total ? len : cap - total);
    total += len;
  }
  return total;
}
