/* llm.c token shard files. */
#include "shard.h"
#include "data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void gpt2_data_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err == NULL || errlen == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static void put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int32_t le32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                   (uint32_t)p[3] << 24);
}

int gpt2_shard_write(const char *path, const uint16_t *tokens, size_t ntok, char *err,
                     size_t errlen) {
  if ((long long)ntok > GPT2_SHARD_MAX_TOKENS) {
    gpt2_data_err(err, errlen, "%s: %zu tokens do not fit a shard (at most %lld)", path, ntok,
                  GPT2_SHARD_MAX_TOKENS);
    return -1;
  }
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (tmp == NULL) {
    gpt2_data_err(err, errlen, "%s: out of memory", path);
    return -1;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);
  FILE *f = fopen(tmp, "wb");
  if (f == NULL) {
    gpt2_data_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  unsigned char header[GPT2_SHARD_HEADER_BYTES] = {0};
  put_le32(header, GPT2_SHARD_MAGIC);
  put_le32(header + 4, GPT2_SHARD_VERSION);
  put_le32(header + 8, (uint32_t)ntok);
  int ok = fwrite(header, 1, sizeof(header), f) == sizeof(header);
  unsigned char buf[8192];
  for (size_t i = 0; ok && i < ntok;) {
    size_t k = 0;
    for (; k < sizeof(buf) / 2 && i < ntok; k++, i++) {
      buf[2 * k] = (unsigned char)tokens[i];
      buf[2 * k + 1] = (unsigned char)(tokens[i] >> 8);
    }
    ok = fwrite(buf, 2, k, f) == k;
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    gpt2_data_err(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

int gpt2_shard_check(const char *path, int64_t *ntok, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    gpt2_data_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  unsigned char header[GPT2_SHARD_HEADER_BYTES];
  struct stat st;
  int got = (int)fread(header, 1, 12, f);
  int rc = fstat(fileno(f), &st);
  fclose(f);
  if (rc != 0) {
    gpt2_data_err(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    return -1;
  }
  if (got < 12 || st.st_size < GPT2_SHARD_HEADER_BYTES) {
    gpt2_data_err(err, errlen, "%s: %lld bytes, shorter than the 1024-byte shard header", path,
                  (long long)st.st_size);
    return -1;
  }
  int32_t magic = le32(header), version = le32(header + 4), n = le32(header + 8);
  if (magic != GPT2_SHARD_MAGIC) {
    gpt2_data_err(err, errlen, "%s: bad magic %d (an llm.c token shard starts with %d)", path,
                  magic, GPT2_SHARD_MAGIC);
    return -1;
  }
  if (version != GPT2_SHARD_VERSION) {
    gpt2_data_err(err, errlen, "%s: shard version %d is not supported (only %d: uint16 tokens)",
                  path, version, GPT2_SHARD_VERSION);
    return -1;
  }
  long long want = GPT2_SHARD_HEADER_BYTES + 2LL * n;
  if (n < 0 || (long long)st.st_size != want) {
    gpt2_data_err(err, errlen,
                  "%s: size %lld bytes does not match its header's %d tokens (expected %lld)",
                  path, (long long)st.st_size, n, want);
    return -1;
  }
  *ntok = n;
  return 0;
}

int gpt2_shard_read(const char *path, uint16_t **tokens, size_t *ntok, char *err,
                    size_t errlen) {
  int64_t n;
  *tokens = NULL;
  if (gpt2_shard_check(path, &n, err, errlen) != 0) return -1;
  uint16_t *t = malloc(n > 0 ? (size_t)n * 2 : 1);
  FILE *f = fopen(path, "rb");
  int ok = t != NULL && f != NULL && fseek(f, GPT2_SHARD_HEADER_BYTES, SEEK_SET) == 0 &&
           fread(t, 2, (size_t)n, f) == (size_t)n;
  if (f) fclose(f);
  if (!ok) {
    free(t);
    gpt2_data_err(err, errlen, "%s: cannot read its %lld tokens", path, (long long)n);
    return -1;
  }
  for (int64_t i = 0; i < n; i++) { /* little-endian on disk */
    const unsigned char *b = (const unsigned char *)&t[i];
    t[i] = (uint16_t)(b[0] | b[1] << 8);
  }
  *tokens = t;
  *ntok = (size_t)n;
  return 0;
}
