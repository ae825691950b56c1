/* parallel_state.c - gathered checkpoints of the model-parallel trainer (parallel_state.h). */
#include "parallel_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"
#include "sync.h"

int pstate_save(const train_options *o, long step, stage *s, const float *m, const float *v,
                uint64_t sample_rng, const gpt2_loader *train, char *err, size_t errlen) {
  grid *g = s->g;
  gpt2_model full;
  gpt2_model_setup(&full, &s->cfg, err, errlen);
  const size_t n = full.layout.num_params;
  float *whole[3] = {calloc(n, sizeof(float)), calloc(n, sizeof(float)), calloc(n, sizeof(float))};
  const float *mine[3] = {s->params, m, v};
  int failed = !whole[0] || !whole[1] || !whole[2];
  if (failed) snprintf(err, errlen, "out of memory for the whole model's checkpoint");
  for (int k = 0; k < 3 && !failed; k++) stage_give(s, mine[k], &full, whole[k]);
  /* each value from its owner, zeros from the rest: the sum is exact */
  if (!ranks_failed(g->world, failed, NULL)) {
    for (int k = 0; k < 3 && !failed; k++)
      if (mlcommReduce(whole[k], whole[k], n, mlcommFloat32, mlcommSum, 0, g->world) !=
          mlcommSuccess) {
        snprintf(err, errlen, "gathering the checkpoint: %s", mlcommGetLastError(g->world));
        failed = 1;
      }
  } else {
    failed = failed ? 1 : 2;
  }
  /* state_save writes trainer.bin from the first ranks of its communicator: put each
   * replica's first rank there, in replica order, world rank 0 first */
  mlcommComm_t ckpt = NULL;
  const int lead = g->tp_rank == 0 && g->pp_rank == 0;
  if (!failed && mlcommCommSplit(g->world, 0, lead ? g->dp_rank : g->dp + g->rank, &ckpt, NULL) !=
                     mlcommSuccess) {
    snprintf(err, errlen, "cannot create the checkpoint communicator: %s",
             mlcommGetLastError(g->world));
    failed = 1;
  }
  int rc = failed == 1 ? -1 : -2;
  if (!failed) {
    trainer_sync fake = {.mode = SYNC_ALLREDUCE, .comm = ckpt, .nranks = g->nranks, .n = n,
                         .m = whole[1], .v = whole[2], .opt_count = n, .t = step};
    mlcommCommRank(ckpt, &fake.rank);
    trainer_info info = {.step = step, .nranks = g->dp, .B = o->B, .T = o->T,
                         .sync = SYNC_ALLREDUCE, .inner_steps = o->inner_steps,
                         .shuffle = o->shuffle, .seed = o->seed, .sample_rng = sample_rng};
    full.params = whole[0];
    rc = state_save(o->out_dir, &info, &full, &fake, train, err, errlen);
  }
  if (ckpt) mlcommCommDestroy(ckpt);
  for (int k = 0; k < 3; k++) free(whole[k]);
  return rc;
}

int pstate_load(const train_options *o, stage *s, float *m_out, float *v_out, long *step,
                uint64_t *sample_rng, gpt2_loader_state *pos, char *err, size_t errlen) {
  const grid *g = s->g;
  char dir[4096], path[4200];
  trainer_info info;
  if (state_find(o->resume, dir, sizeof dir, err, errlen) != 0) return -1;
  if (state_read_info(dir, g->dp_rank, &info, pos, err, errlen) != 0) return -1;
  if (info.nranks != g->dp || info.B != o->B || info.T != o->T || info.shuffle != o->shuffle ||
      (o->shuffle && info.seed != o->seed) || info.sync == SYNC_DILOCO) { /* zero1's are whole */
    snprintf(err, errlen,
             "--resume %.512s: it was written by %d data-parallel replica%s with -b %d -T %d%s "
             "(--sync %s); resume with --data-parallel %d and the same batch shape and shuffling "
             "(any --tensor-parallel and --pipeline-parallel), not diloco",
             dir, info.nranks, info.nranks == 1 ? "" : "s", info.B, info.T,
             info.shuffle ? " --shuffle" : "", sync_mode_name((sync_mode)info.sync), info.nranks);
    return -1;
  }
  gpt2_model full;
  gpt2_model_setup(&full, &s->cfg, err, errlen);
  const size_t n = full.layout.num_params;
  float *p = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
  int rc = -1;
  trainer_sync fake = {.mode = SYNC_ALLREDUCE, .n = n, .m = m, .v = v, .opt_count = n};
  full.params = p;
  snprintf(path, sizeof path, "%s/model.bin", dir);
  if (!p || !m || !v)
    snprintf(err, errlen, "out of memory reading %s", dir);
  else if (gpt2_checkpoint_read_params(path, &full, err, errlen) == 0 &&
           state_read_optimizer(dir, &fake, err, errlen) == 0)
    rc = 0;
  if (rc == 0) {
    stage_take(s, &full, p, s->params);
    stage_take(s, &full, m, m_out);
    stage_take(s, &full, v, v_out);
    *step = info.step;
    *sample_rng = info.sample_rng;
  }
  free(p);
  free(m);
  free(v);
  return rc;
}
