/*
 * dp.h - a step's update of one rank's part of the model: the tied wte gradient summed
 * between the first and last stage, then the replicas of the part combined over the
 * data-parallel group, as the plain trainer's --sync modes do:
 *   allreduce  every replica averages the whole part's gradient with
 *              mlcommAllReduceAsync: each layer's as soon as the step's last backward
 *              has finished it (stage.layer_ready), so the reductions run while the
 *              layers below compute, then the embeddings and lnf; waits for all and
 *              applies AdamW to the whole part;
 *   zero1      the trained ranges are packed into one buffer padded to DP equal shards
 *              (multiples of 16 floats); mlcommReduceScatter averages it and leaves
 *              replica d shard d, which it updates with the only copy of that shard's
 *              AdamW moments (1/DP of the memory), and mlcommAllGather (in place) brings
 *              every replica the new parameters.
 */
#ifndef GPT2_TRAINER_DP_H
#define GPT2_TRAINER_DP_H

#include "options.h"
#include "tp.h"

typedef struct {
  sync_mode mode;
  stage *s;
  int k; /* the ranges this rank trains (stage_owned) */
  size_t off[4], cnt[4];
  size_t owned, padded, shard; /* zero1: floats trained, padded to dp shards, one shard */
  float *pack;                 /* zero1: (padded) gradients, then parameters */
  float *m, *v;                /* zero1: (shard) moments of this replica's shard */
  mlcommRequest_t *reqs;       /* allreduce: in flight this step */
  int nreqs, cap;
  mlcommResult_t failed;       /* the first failure met starting or testing them */
} dp_sync;

/* zero1 frees the stage's whole-part moments (s->m, s->v NULL) for its shard's. */
int dp_init(dp_sync *d, stage *s, sync_mode mode, char *err, size_t errlen);
void dp_free(dp_sync *d);

/* After the step's backward: combines gradients and updates the parameters (1-based
 * step for AdamW's bias correction). Collective over the emb and dp groups. */
mlcommResult_t dp_step(dp_sync *d, const gpt2_adamw *opt, long step);

/* The part's moments in the stage layout (m, v: part.layout.num_params floats each);
 * zero1 gathers the shards (collective over dp). */
mlcommResult_t dp_get_moments(dp_sync *d, float *m, float *v);
/* Loads the part's moments from the stage layout; zero1 keeps its shard. */
void dp_set_moments(dp_sync *d, const float *m, const float *v);

#endif /* GPT2_TRAINER_DP_H */
