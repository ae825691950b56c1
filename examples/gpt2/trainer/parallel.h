/*
 * parallel.h - the trainer with tensor, pipeline and data parallelism together
 * (--tensor-parallel TP --pipeline-parallel PP --data-parallel DP --micro-batches M):
 * grid.h lays out the ranks, tp.h holds a rank's part of the model, pp.h runs the 1F1B
 * schedule; this file loads and saves the whole model, reads the data, and runs the
 * steps. Each replica (a TP x PP block of ranks) reads -b rows per step as one
 * data-parallel rank of the plain trainer does, in M micro-batches; per step the first
 * and last stage sum wte's gradient (the tied embedding and head), each data-parallel
 * group averages the gradients of the part it holds, and every rank applies AdamW to
 * its part. With TP = PP = 1 this is the plain trainer's allreduce (with M-way
 * gradient accumulation).
 */
#ifndef GPT2_TRAINER_PARALLEL_H
#define GPT2_TRAINER_PARALLEL_H

#include <mlcomm/mlcomm.h>

#include "options.h"

/* Runs the whole training on every rank of world. Returns the exit status: 0, 1 on a
 * failure (the lowest failing rank printed why), 2 on a layout the model or the run
 * does not allow (rank 0 printed a sentence naming the flag). */
int parallel_run(const train_options *o, mlcommComm_t world, const char *transport);

#endif /* GPT2_TRAINER_PARALLEL_H */
