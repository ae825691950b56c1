/*
 * state.h - checkpoints that resume exactly.
 *
 * A checkpoint is a directory OUT/step_NNNNNNNN holding
 *   model.bin            the parameters, an llm.c version-3 (fp32) model file
 *   optimizer.bin        AdamW's m and v for every parameter and the step count
 *                        (allreduce and zero1; zero1 gathers its shards first, so either
 *                        mode can resume the other's checkpoint)
 *   optimizer_rankR.bin  diloco: each rank's own inner AdamW state
 *   outer.bin            diloco: the outer momentum
 *   trainer.bin          steps done, run shape, every rank's data-loader position, the
 *                        sampling generator
 * and OUT/latest names the newest one. The directory is written as step_NNNNNNNN.tmp and
 * renamed when every rank has finished its files, then latest is replaced the same way,
 * so a crash at any moment leaves the previous checkpoint intact and named.
 */
#ifndef GPT2_TRAINER_STATE_H
#define GPT2_TRAINER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dataloader.h"
#include "gpt2.h"
#include "sync.h"

typedef struct {
  int64_t step; /* steps completed */
  int32_t nranks, B, T, sync, inner_steps, shuffle;
  uint64_t seed, sample_rng;
} trainer_info;

/* Collective: every rank lowest-first agrees whether any failed. Returns 1 when some
 * rank passed failed != 0 (or the agreement itself failed); *first (may be NULL) is
 * then the lowest such rank, which is the one that should print its message. */
int ranks_failed(mlcommComm_t comm, int failed, int *first);

/* mkdir -p dir. */
int state_make_dirs(const char *dir, char *err, size_t errlen);

/* Collective: writes the checkpoint of info->step into out_dir (see above). loader is
 * this rank's training loader. Returns 0 on every rank, or fails on every rank: -1 on a
 * rank that failed itself (err says why), -2 on the others (err says a peer failed). */
int state_save(const char *out_dir, const trainer_info *info, const gpt2_model *model,
               trainer_sync *s, const gpt2_loader *loader, char *err, size_t errlen);

/* Finds the checkpoint directory: dir/latest's target, or dir itself when it holds a
 * trainer.bin. Writes it to out (outlen bytes). */
int state_find(const char *dir, char *out, size_t outlen, char *err, size_t errlen);

/* Reads dir/trainer.bin and this rank's loader position. */
int state_read_info(const char *dir, int rank, trainer_info *info, gpt2_loader_state *loader,
                    char *err, size_t errlen);

/* Reads the optimizer state (and diloco's outer momentum) into s. */
int state_read_optimizer(const char *dir, trainer_sync *s, char *err, size_t errlen);

#endif /* GPT2_TRAINER_STATE_H */
