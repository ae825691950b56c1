/*
 * parallel_state.h - checkpoints of the model-parallel trainer, in the plain trainer's
 * format (state.h): model.bin (an llm.c file), optimizer.bin (AdamW's m and v), and
 * trainer.bin with one data-loader position per data-parallel replica. Every tensor is
 * gathered to rank 0 from its one owner, so the files describe the whole model and not
 * a layout: a run resumes them with any --tensor-parallel and --pipeline-parallel (the
 * same --data-parallel count, -b and -T, since those fix what each replica reads), and
 * so does the plain data-parallel trainer with that many ranks, and the other way round.
 */
#ifndef GPT2_TRAINER_PARALLEL_STATE_H
#define GPT2_TRAINER_PARALLEL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "dataloader.h"
#include "options.h"
#include "tp.h"

/* Collective over the world: m, v are this rank's part's AdamW moments (stage layout);
 * writes OUT/step_NNNNNNNN (state_save's rules: written as
 * .tmp, renamed when complete, then latest). 0, or -1 on this rank's failure, -2 on
 * another's. */
int pstate_save(const train_options *o, long step, stage *s, const float *m, const float *v,
                uint64_t sample_rng, const gpt2_loader *train, char *err, size_t errlen);

/* Local: reads the checkpoint found from o->resume into this rank's part: parameters
 * into s->params, AdamW moments into m and v (stage layout), its replica's data position;
 * *step the steps done, *sample_rng the text sampler's generator. */
int pstate_load(const train_options *o, stage *s, float *m, float *v, long *step,
                uint64_t *sample_rng, gpt2_loader_state *pos, char *err, size_t errlen);

#endif /* GPT2_TRAINER_PARALLEL_STATE_H */
