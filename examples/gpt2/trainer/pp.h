/*
 * pp.h - the pipeline: a step's micro-batches through the stages in the 1F1B order
 * (PipeDream-Flush, as Megatron-LM runs it). Stage r of P first runs min(P-r-1, M)
 * forwards, then alternates one forward and one backward, then runs the backwards left,
 * so it holds at most P-r micro-batches' activations (its slots). Activations go to the
 * next stage and their gradients back with mlcommSendAsync / mlcommRecvAsync (tag 0 and
 * 1, so each stream stays in order), posted as early as a buffer is free and grouped
 * (mlcommGroupStart/End) where a send and a receive are due together; the compute of the
 * next micro-batch runs while they travel. Waits are only on what the next operation
 * reads or overwrites.
 */
#ifndef GPT2_TRAINER_PP_H
#define GPT2_TRAINER_PP_H

#include "tp.h"

/* Slots stage s needs for M micro-batches under 1F1B. */
int pp_slots(int P, int r, int M);

/* One training step: inputs, targets (M*Bm, T) rows; every row's loss weighs dloss.
 * Gradients are added into s->grads. Returns the sum of the losses on the last stage
 * (0 elsewhere). */
double pp_train(stage *s, int M, const int *inputs, const int *targets, float dloss);

/* Forward only (validation), one micro-batch after the other. */
double pp_forward(stage *s, int M, const int *inputs, const int *targets);

#endif /* GPT2_TRAINER_PP_H */
