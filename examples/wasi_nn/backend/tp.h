/*
 * tp.h - tensor parallelism over mlcomm (Megatron-style). Under mpirun every rank runs
 * the same guest; each holds 1/N of every block: the q, k, v rows of its attention
 * heads and its share of the MLP's hidden units (column split), with the matching
 * columns of the two output projections (row split), whose partial sums one
 * mlcommAllReduce per projection adds. The tied embedding / output head is split by
 * vocabulary rows: a token's embedding comes from the rank holding its row (one more
 * all-reduce), and the logits are gathered (mlcommAllGather). So N ranks hold one model.
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

typedef struct tp_model tp_model;
typedef struct tp_kv tp_kv;

/* Keeps this rank's shard of full (which the caller then frees). Needs NH and 4C
 * divisible by the rank count. */
int tp_model_create(tp_model **out, const gpt2_model *full, const tp_world *w, char *err,
                    size_t errlen);
void tp_model_free(tp_model *m);
int tp_kv_create(tp_kv **out, const tp_model *m, int max_len, char *err, size_t errlen);
void tp_kv_free(tp_kv *kv);
int tp_kv_length(const tp_kv *kv);
void tp_kv_truncate(tp_kv *kv, int len);
/* As gpt2_forward_token, collective: every rank gets all V logits. */
int tp_forward_token(const tp_model *m, tp_kv *kv, int token, float *logits);

#endif
