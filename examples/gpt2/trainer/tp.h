/*
 * tp.h - one rank's part of the model for training: the layers of its pipeline stage,
 * split Megatron-style over its tensor-parallel group.
 *
 * The part (gpt2_tp in gpt2.h says which rows and columns): the q, k, v rows of its
 * heads and the matching columns of attprojw (column- then row-parallel), its share of
 * the MLP's hidden units (rows of fcw, columns of fcprojw), and its block of vocab_stride
 * rows of wte. Per block one all-reduce forward (after the row-parallel product, before
 * its bias) and one backward (the gradient at the layernorm's output, after the
 * column-parallel product), so two of each per layer. The first stage embeds (the owner
 * of a token's row supplies it, one all-reduce); the last runs the output head on its
 * vocabulary rows with a parallel cross-entropy: each rank runs the fused output head
 * (classifier.c) over its rows, keeping its (B,T,vocab_stride) logits, then the ranks
 * agree on each row's largest log-sum-exp (all-reduce max of BT) and on the sum of
 * their exponentials and the target's logit (one all-reduce of 2BT), so no rank ever
 * holds B*T*V logits; backward turns the logits into their gradient with the combined
 * log-sum-exp and all-reduces the gradient at lnf's output.
 *
 * Parameters are the shard layout of gpt2_model_setup_tp for a model of this stage's
 * layers only: [wte block | wpe | the stage's layers | lnfw lnfb], without the wte block
 * on a middle stage. Only the first stage uses wpe and only the last lnf (small: every
 * stage keeps them, so the layers sit at one offset formula).
 * Layer norms and the projections' biases are replicated in a TP group: their gradients
 * are computed from the same (all-reduced) bits on every rank, so they stay equal.
 */
#ifndef GPT2_TRAINER_TP_H
#define GPT2_TRAINER_TP_H

#include <stddef.h>

#include "gpt2.h"
#include "grid.h"

typedef struct {
  float *input;    /* (BT,C) the stage's input: the embedding, or what the previous sent */
  float *gradin;   /* (BT,C) the gradient at the stage's output, from the next stage */
  float *dinput;   /* (BT,C) the gradient at the stage's input, for the previous stage */
  float *layers;   /* per layer: see tp.c */
  float *lnf, *lnf_mean, *lnf_rstd, *logits, *lse; /* last stage */
  float *losses;                                   /* (BT) last stage */
  const int *inputs, *targets;                     /* (Bm,T) this micro-batch's tokens */
} stage_slot;

typedef struct {
  gpt2_config cfg;  /* the whole model */
  gpt2_config scfg; /* cfg with this stage's layers */
  gpt2_tp tp;       /* this rank's tensor part (the callbacks unused) */
  gpt2_model part;  /* scfg's shard layout; part.params = params */
  int l0, nl;       /* global layers [l0, l0 + nl) */
  int first, last;
  int Bm, T;        /* micro-batch shape */
  int a, f, hl, vs; /* attention channels, MLP units, heads, wte rows held */
  size_t layer_acts;
  float *params, *grads, *m, *v; /* part.layout.num_params each */
  int nslots;
  stage_slot *slots;
  float *scratch; /* backward: dresidual, dbtc, dqkv, dfch, dfch_gelu; forward: proj */
  float *slot_memory;
  float *cls_scratch, *cls_dwte; /* last stage: the fused head's scratch, its dwte */
  int *cls_targets;              /* last stage: targets as rows of this rank's block */
  grid *g;
  /* optional: called when the step's last backward has finished layer l's gradient
   * (grads[off, off + cnt)), so its reduction over the replicas can start */
  void (*layer_ready)(void *ctx, size_t off, size_t cnt);
  void *ready_ctx;
  mlcommResult_t failed; /* first failure of a collective in forward/backward */
} stage;

/* Sets up rank g's part of cfg for micro-batches (Bm,T), with nslots activation slots;
 * parameters zero. */
int stage_init(stage *s, const gpt2_config *cfg, grid *g, int Bm, int T, int nslots, char *err,
               size_t errlen);
void stage_free(stage *s);

/* part (a stage-layout buffer: params, m or v) <- this rank's part of whole (a buffer
 * of full's layout: the whole model, same shape). */
void stage_take(const stage *s, const gpt2_model *full, const float *whole, float *part);
/* Writes this rank's part of src (a stage-layout buffer) into dst (a whole-model buffer
 * of full's layout, zero where this rank is not the one owner): replicated tensors come
 * from tensor rank 0, wte from the first stage, every thing from data-parallel rank 0. */
void stage_give(const stage *s, const float *src, const gpt2_model *full, float *dst);

/* The ranges of the parameters this rank trains (its own optimizer state): at most 4. */
int stage_owned(const stage *s, size_t off[4], size_t cnt[4]);

/* Forward of micro-batch k in slot sl (its input already there unless first stage).
 * On the last stage returns the sum of the Bm*T losses, else 0. Collective over tp. */
double stage_forward(stage *s, int sl);
/* The slot's stage output (BT,C): what the next stage receives. */
float *stage_output(stage *s, int sl);
/* Backward of the slot's micro-batch, each row's loss weighing dloss; gradients added
 * into s->grads. The slot's gradin must hold the next stage's gradient (not last);
 * leaves the input's gradient in dinput (not first). last_one: the step's last
 * micro-batch (layer_ready is called). Collective over tp. */
void stage_backward(stage *s, int sl, float dloss, int last_one);

#endif /* GPT2_TRAINER_TP_H */
