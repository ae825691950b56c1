/* llm.c token shards: write/read round trip, the exact bytes, and bad files. */
#include "shard.h"
#include "test_tokenizer_toy.h"

static void write_header(const char *path, int32_t magic, int32_t version, int32_t ntok,
                         size_t token_bytes) {
  FILE *f = fopen(path, "wb");
  int32_t h[256] = {magic, version, ntok};
  fwrite(h, 4, 256, f); /* the test machine is little-endian, like llm.c's files */
  for (size_t i = 0; i < token_bytes; i++) fputc(i & 0xff, f);
  fclose(f);
}

int main(void) {
  char dir[256], path[512], err[512];
  test_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/s.bin", dir);

  /* Round trip, with values that need both bytes. */
  enum { N = 70001 };
  uint16_t *tokens = malloc(N * sizeof(uint16_t));
  for (int i = 0; i < N; i++) tokens[i] = (uint16_t)(i * 7919u);
  CHECK(gpt2_shard_write(path, tokens, N, err, sizeof(err)) == 0);
  int64_t ntok = -1;
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == 0 && ntok == N);
  uint16_t *back = NULL;
  size_t n = 0;
  CHECK(gpt2_shard_read(path, &back, &n, err, sizeof(err)) == 0);
  CHECK(n == N && back && memcmp(back, tokens, N * sizeof(uint16_t)) == 0);
  free(back);

  /* The bytes: header [20240520, 1, ntok, 0...] then little-endian uint16. */
  FILE *f = fopen(path, "rb");
  unsigned char raw[1030];
  CHECK(fread(raw, 1, sizeof(raw), f) == sizeof(raw));
  fseek(f, 0, SEEK_END);
  CHECK(ftell(f) == 1024 + 2L * N);
  fclose(f);
  CHECK(raw[0] == 0x88 && raw[1] == 0xd8 && raw[2] == 0x34 && raw[3] == 0x01); /* 20240520 */
  CHECK(raw[4] == 1 && raw[8] == (N & 0xff) && raw[9] == ((N >> 8) & 0xff) &&
        raw[10] == (N >> 16));
  int zeros = 1;
  for (int i = 12; i < 1024; i++) zeros &= raw[i] == 0;
  CHECK(zeros);
  CHECK(raw[1026] == (tokens[1] & 0xff) && raw[1027] == (tokens[1] >> 8));

  /* An empty shard is valid. */
  CHECK(gpt2_shard_write(path, tokens, 0, err, sizeof(err)) == 0);
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == 0 && ntok == 0);

  /* Bad files, each named in the error. */
  CHECK(gpt2_shard_check("/nonexistent/s.bin", &ntok, err, sizeof(err)) == -1);
  CHECK_ERR(err, "/nonexistent/s.bin", "cannot open");
  write_header(path, 20240328, 1, 4, 8);
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "bad magic 20240328");
  write_header(path, 20240520, 2, 4, 8);
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "version 2");
  write_header(path, 20240520, 1, 4, 7);
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "size 1031 bytes", "4 tokens", "expected 1032");
  write_header(path, 20240520, 1, 4, 10);
  CHECK(gpt2_shard_read(path, &back, &n, err, sizeof(err)) == -1 && back == NULL);
  CHECK_ERR(err, path, "expected 1032");
  f = fopen(path, "wb");
  fputs("tiny", f);
  fclose(f);
  CHECK(gpt2_shard_check(path, &ntok, err, sizeof(err)) == -1);
  CHECK_ERR(err, path, "shorter than the 1024-byte shard header");
  snprintf(path, sizeof(path), "%s/no/such/dir/s.bin", dir);
  CHECK(gpt2_shard_write(path, tokens, 3, err, sizeof(err)) == -1);
  CHECK_ERR(err, "no/such/dir/s.bin.tmp", "cannot create");

  free(tokens);
  test_rmtree(dir);
  return test_result();
}
