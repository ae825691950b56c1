/*
 * tp.h - tensor parallelism over mlcomm (Megatron-style). Under mpirun every rank runs
 * the same guest; each holds 1/N of every block: the q, k, v rows of its attention
 * heads and its share of the MLP's hidden units (column split), with the matching
 * columns of the two output projections (row split), whose partial sums one
 * mlcommAllReduce per projection adds. The tied embedding / output head is split by
 * vocabulary rows: a token's embedding comes from the rank holding its row (one more
 * all-reduce), and the logits are gathered (mlcommAllGather). So N ranks hold one model.
 *
 * The model library runs the shard (gpt2_forward_token on a gpt2_tp, with its cache);
 * this file joins the job, makes the shard and supplies the collectives it calls.
 */
#ifndef WASI_NN_TP_H
#define WASI_NN_TP_H

#include <stddef.h>
#include <stdint.h>

#include <mlcomm/mlcomm.h>

#include "gpt2.h"

typedef struct {
  int rank, nranks;    /* 0, 1 without MPI */
  mlcommComm_t comm;   /* NULL when nranks == 1 */
} tp_world;

/* Joins the MPI job when the process was started by mpirun with more than one rank
 * (MPI_Init if nobody has; WASI_NN_GPT2_TP=0 turns it off), else a world of one.
 * Collective under mpirun. */
int tp_world_init(tp_world *w, char *err, size_t errlen);
void tp_world_free(tp_world *w);
/* 1 on every rank when failed is set on any rank (a no-op for one rank). */
int tp_any(const tp_world *w, int failed);
void tp_broadcast_u64(const tp_world *w, uint64_t *v);

/* Makes out this rank's shard of full: tp is the model library's split for w's rank
 * (it must outlive out), with mlcomm's all-reduce and all-gather over w as its
 * callbacks; out->params is allocated here and filled from full's. Needs NH and 4C
 * divisible by the rank count. The caller then frees full's parameters, and later
 * out->params. */
int tp_shard(gpt2_model *out, gpt2_tp *tp, const gpt2_model *full, const tp_world *w, char *err,
             size_t errlen);

#endif
