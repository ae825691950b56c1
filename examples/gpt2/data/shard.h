/* llm.c token shards: a 1024-byte header of 256 x int32 [20240520, 1, ntok, 0...], then
 * ntok x uint16 tokens, all little-endian. A file's size is exactly 1024 + 2 * ntok.
 *
 * Functions return 0, or -1 with one sentence naming the file and the problem in err. */
#ifndef GPT2_SHARD_H
#define GPT2_SHARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_SHARD_MAGIC 20240520
#define GPT2_SHARD_VERSION 1
#define GPT2_SHARD_HEADER_BYTES 1024
#define GPT2_SHARD_MAX_TOKENS 2147483647LL /* ntok is an int32 in the header */

/* Writes ntok tokens as a shard. The file is written next to path and renamed into place. */
int gpt2_shard_write(const char *path, const uint16_t *tokens, size_t ntok, char *err,
                     size_t errlen);

/* Checks the header and the file size; *ntok gets the token count. */
int gpt2_shard_check(const char *path, int64_t *ntok, char *err, size_t errlen);

/* Reads a whole shard (after gpt2_shard_check's checks). *tokens is malloc'ed. */
int gpt2_shard_read(const char *path, uint16_t **tokens, size_t *ntok, char *err,
                    size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
