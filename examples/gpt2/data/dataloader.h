/* Data loader for the GPT-2 trainer: batches of B rows x T tokens from llm.c token shards
 * (see shard.h), split across data-parallel ranks the way llm.c's loader splits them.
 *
 * Batches of one epoch: shard by shard, a shard of ntok tokens gives
 * floor((ntok - 1) / (nranks * B * T)) batches. Batch idx of rank r reads the B*T + 1
 * tokens that start at token idx*nranks*B*T + r*B*T of its shard; inputs are the first
 * B*T of them and targets the last B*T. So nranks ranks with B rows each see exactly the
 * rows that one process with nranks*B rows sees, and no two ranks share a row. After the
 * last batch of the last shard the next epoch starts at the first shard.
 *
 * With shuffle != 0 the order of the shards in each epoch, and of the batches within each
 * shard, is a permutation drawn from (seed, epoch, shard position) alone, so every rank
 * draws the same one and ranks still split each batch between them. */
#ifndef GPT2_DATALOADER_H
#define GPT2_DATALOADER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt2_loader gpt2_loader;

/* Opens the shards matching glob pattern (sorted). B rows of T tokens per batch; rank r of nranks
 * reads the rows llm.c's loader gives it: batch idx of rank r starts at token idx*nranks*B*T + r*B*T
 * within the current shard (moving to the next shard when the next batch would not fit; wrapping to
 * the first shard after the last). shuffle != 0 permutes the order of batches (and shards) with a
 * fixed seed identically on every rank. Returns 0, or -1 with a sentence in err naming the file and
 * the problem (no file matches, bad magic/version, size != 1024 + 2*ntok, a shard shorter than
 * nranks*B*T+1 tokens...). */
int gpt2_loader_open(gpt2_loader **out, const char *pattern, int B, int T, int rank, int nranks,
                     int shuffle, uint64_t seed, char *err, size_t errlen);

/* Next batch: inputs[B*T] and targets[B*T] (targets are inputs shifted by one token).
 * Returns 0, or -1 when the shard cannot be read (gpt2_loader_error says why); the
 * position does not move on failure. */
int gpt2_loader_next(gpt2_loader *l, int *inputs, int *targets);

/* Back to the first batch of epoch 0. */
void gpt2_loader_reset(gpt2_loader *l);

/* Batches per epoch for this rank set (the same on every rank). */
long gpt2_loader_num_batches(const gpt2_loader *l);

/* The position, to checkpoint and resume exactly (same batches as an uninterrupted run):
 * shard = position of the current shard in this epoch's order (the sorted file index when
 * not shuffling), batch = position of the next batch in that shard's order, epoch = epochs
 * completed, rng = the shuffle generator's seed for the current shard (0 without shuffle),
 * which set_state checks to refuse a state saved with another seed or shuffle setting. */
typedef struct { int64_t shard, batch, epoch; uint64_t rng; } gpt2_loader_state;
void gpt2_loader_get_state(const gpt2_loader *l, gpt2_loader_state *st);
int gpt2_loader_set_state(gpt2_loader *l, const gpt2_loader_state *st, char *err, size_t errlen);

/* The last error of gpt2_loader_next, or "" if none. */
const char *gpt2_loader_error(const gpt2_loader *l);

void gpt2_loader_close(gpt2_loader *l);

#ifdef __cplusplus
}
#endif
#endif
