/* BPE merges derived from the vocabulary, and the merge loop over one pre-token.
 *
 * A merge is a pair of token ids (left, right) -> result id. Ranks follow result ids:
 * GPT-2 made token 256 + i with merge i, so the vocabulary order is the merge order and
 * replaying BPE over each token's bytes with the merges before it yields its own merge. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX

struct gpt2_bpe {
  uint32_t byte_id[256];  /* the single-byte token of each byte value */
  uint32_t num_merges;
  uint32_t *left, *right, *result; /* per rank */
  /* Open addressing, linear probing: key (left << 32 | right) -> rank. */
  uint64_t *keys;
  uint32_t *ranks;
  size_t mask;
};

static size_t hash_slot(uint64_t key, size_t mask) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return (size_t)key & mask;
}

static int lookup(const gpt2_bpe *b, uint32_t left, uint32_t right, uint32_t *rank) {
  uint64_t key = (uint64_t)left << 32 | right;
  for (size_t s = hash_slot(key, b->mask);; s = (s + 1) & b->mask) {
    if (b->keys[s] == key) {
      *rank = b->ranks[s];
      return 1;
    }
    if (b->keys[s] == EMPTY_KEY) return 0;
  }
}

static void insert(gpt2_bpe *b, uint32_t left, uint32_t right, uint32_t result) {
  uint32_t rank = b->num_merges++;
  b->left[rank] = left;
  b->right[rank] = right;
  b->result[rank] = result;
  uint64_t key = (uint64_t)left << 32 | right;
  size_t s = hash_slot(key, b->mask);
  while (b->keys[s] != EMPTY_KEY) s = (s + 1) & b->mask;
  b->keys[s] = key;
  b->ranks[s] = rank;
}

size_t gpt2_bpe_encode_piece(const gpt2_bpe *b, const unsigned char *bytes, size_t n,
                             uint32_t *ids) {
  for (size_t i = 0; i < n; i++) ids[i] = b->byte_id[bytes[i]];
  while (n > 1) {
    uint32_t best = UINT32_MAX, rank;
    for (size_t i = 0; i + 1 < n; i++)
      if (lookup(b, ids[i], ids[i + 1], &rank) && rank < best) best = rank;
    if (best == UINT32_MAX) break;
    uint32_t l = b->left[best], r = b->right[best];
    size_t w = 0;
    for (size_t i = 0; i < n;) {
      if (i + 1 < n && ids[i] == l && ids[i + 1] == r) {
        ids[w++] = b->result[best];
        i += 2;
      } else {
        ids[w++] = ids[i++];
      }
    }
    n = w;
  }
  return n;
}

int gpt2_bpe_new(gpt2_bpe **out, const gpt2_tokenizer *t, char *err, size_t errlen) {
  *out = NULL;
  uint32_t n = gpt2_tokenizer_vocab_size(t), eot = gpt2_tokenizer_eot(t);
  gpt2_bpe *b = calloc(1, sizeof(*b));
  size_t cap = 1024;
  while (cap < 2 * (size_t)n) cap *= 2;
  uint32_t *scratch = malloc(256 * sizeof(uint32_t));
  if (b) {
    b->left = malloc((size_t)n * sizeof(uint32_t));
    b->right = malloc((size_t)n * sizeof(uint32_t));
    b->result = malloc((size_t)n * sizeof(uint32_t));
    b->keys = malloc(cap * sizeof(uint64_t));
    b->ranks = malloc(cap * sizeof(uint32_t));
  }
  if (!b || !scratch || !b->left || !b->right || !b->result || !b->keys || !b->ranks) {
    gpt2_set_err(err, errlen, "out of memory for the BPE merges of %u tokens", n);
    goto fail;
  }
  memset(b->keys, 0xff, cap * sizeof(uint64_t));
  b->mask = cap - 1;

  for (int c = 0; c < 256; c++) b->byte_id[c] = UINT32_MAX;
  for (uint32_t id = 0; id < n; id++) {
    size_t len;
    const char *s = gpt2_tokenizer_decode(t, id, &len);
    if (len != 1 || id == eot) continue;
    unsigned char c = (unsigned char)s[0];
    if (b->byte_id[c] != UINT32_MAX) {
      gpt2_set_err(err, errlen, "tokens %u and %u are both the byte 0x%02x", b->byte_id[c], id,
                   c);
      goto fail;
    }
    b->byte_id[c] = id;
  }
  for (int c = 0; c < 256; c++) {
    if (b->byte_id[c] == UINT32_MAX) {
      gpt2_set_err(err, errlen, "no token for the byte 0x%02x: not a byte-level BPE vocabulary",
                   c);
      goto fail;
    }
  }
  for (uint32_t id = 0; id < n; id++) {
    size_t len;
    const char *s = gpt2_tokenizer_decode(t, id, &len);
    if (len == 1 || id == eot) continue;
    size_t parts = gpt2_bpe_encode_piece(b, (const unsigned char *)s, len, scratch);
    if (parts != 2) {
      gpt2_set_err(err, errlen,
                   "token %u (%zu bytes) %s: the vocabulary is not in BPE merge order, so no "
                   "merges can be derived from it",
                   id, len, parts == 1 ? "repeats an earlier token"
                                       : "is not a merge of two earlier tokens");
      goto fail;
    }
    insert(b, scratch[0], scratch[1], id);
  }
  free(scratch);
  *out = b;
  return 0;
fail:
  free(scratch);
  gpt2_bpe_free(b);
  return -1;
}

void gpt2_bpe_free(gpt2_bpe *b) {
  if (b == NULL) return;
  free(b->left);
  free(b->right);
  free(b->result);
  free(b->keys);
  free(b->ranks);
  free(b);
}

uint32_t gpt2_bpe_num_merges(const gpt2_bpe *b) { return b->num_merges; }

void gpt2_bpe_merge(const gpt2_bpe *b, uint32_t rank, uint32_t *left, uint32_t *right,
                    uint32_t *result) {
  *left = b->left[rank];
  *right = b->right[rank];
  *result = b->result[rank];
}
