/*
 * sync.h - how the ranks train one model together, through mlcomm only.
 *
 *  allreduce: every rank keeps all parameters and the whole AdamW state. Backward
 *             reports each layer's gradient as soon as it is final; that range is
 *             averaged with mlcommAllReduceAsync at once, so the reduction runs while
 *             backward computes the layers below (sync_grad_hook). wte, most of the
 *             gradient, is reported right after the output head: the encoder's share
 *             of it comes later as each rank's small (B,T,C) gradient at the encoder
 *             output, which the ranks all-gather (with their tokens) and every rank
 *             adds in the same order. The step waits for all of it, then every rank
 *             applies the same AdamW update.
 *  zero1:     gradients are averaged with mlcommReduceScatter: rank r receives shard r
 *             only, updates that shard of the parameters with its shard of the AdamW
 *             state (1/N of the memory), and mlcommAllGather brings every rank all the
 *             parameters. The parameter count is padded with zeros to N equal shards.
 *             The embeddings' gradient is split and completed as in allreduce, so
 *             that the two modes compute the same bits where the transport sums both
 *             collectives in one order.
 *  diloco:    every rank takes H AdamW steps alone on its own data; then the ranks
 *             average their deltas from the last shared parameters (mlcommAllReduce)
 *             and apply it as the gradient of an outer SGD step with Nesterov momentum
 *             (DiLoCo, Douillard et al. 2023). With H=1, outer lr 1 and momentum 0 the
 *             new parameters are the average of the ranks' parameters.
 */
#ifndef GPT2_TRAINER_SYNC_H
#define GPT2_TRAINER_SYNC_H

#include <stddef.h>

#include <mlcomm/mlcomm.h>

#include "gpt2.h"
#include "options.h"

typedef struct {
  sync_mode mode;
  mlcommComm_t comm;
  int rank, nranks;
  size_t n;      /* parameters */
  size_t padded; /* n rounded up to nranks shards of a multiple of 16 floats */
  size_t shard;  /* padded / nranks */
  float *params; /* padded floats (mlcommMemAlloc); the model's parameters */
  float *grads;  /* padded floats (mlcommMemAlloc); the pad stays 0 */
  /* AdamW moments for params[opt_offset, opt_offset + opt_count) */
  float *m, *v;
  size_t opt_offset, opt_count;
  long t; /* AdamW steps taken */
  /* diloco */
  int inner_steps;
  float outer_lr, outer_momentum;
  float *global;   /* (n) parameters after the last outer step */
  float *momentum; /* (n) outer momentum */
  float *delta;    /* (n, mlcommMemAlloc) global - local, then its average */
  /* allreduce and zero1: requests in flight during backward */
  const gpt2_model *model;
  int B, T;
  float *dx0_all;      /* (nranks, B, T, C) every rank's gradient at the encoder output */
  int32_t *inputs_all; /* (nranks, B, T) their tokens */
  int have_embeddings; /* this step's were gathered */
  mlcommRequest_t *reqs;
  int nreqs, cap;
  mlcommResult_t failed; /* first failure seen inside the hook */
  double comm_seconds;   /* time spent inside mlcomm since sync_begin_step */
} trainer_sync;

/* Allocates parameters, gradients and optimizer state for the model's parameters, all
 * zero. model must stay valid (its shape and layout are used every step). */
int sync_init(trainer_sync *s, const train_options *o, mlcommComm_t comm, const gpt2_model *model,
              char *err, size_t errlen);
void sync_free(trainer_sync *s);

/* Call once the parameters hold their starting values (diloco keeps a copy). */
void sync_start(trainer_sync *s);

void sync_begin_step(trainer_sync *s);

/* The hook to pass to gpt2_backward (NULL members for modes that reduce afterwards). */
gpt2_grad_hook sync_grad_hook(trainer_sync *s);

/* After backward: completes the gradient exchange and updates the parameters.
 * step is 1-based. *outer is set when a diloco outer step ran. */
int sync_step(trainer_sync *s, const gpt2_adamw *opt, long step, int *outer, char *err,
              size_t errlen);

/* diloco: an outer step now (at the end of a run that stops between outer steps). */
int sync_outer_step(trainer_sync *s, char *err, size_t errlen);

/* Average of x over ranks (small vectors: losses, flags); times count as communication. */
int sync_average(trainer_sync *s, float *x, int count, char *err, size_t errlen);

/* zero1: every rank receives the whole AdamW state (n floats each in m_out, v_out).
 * Other modes copy their own. */
int sync_gather_optimizer(trainer_sync *s, float *m_out, float *v_out, char *err, size_t errlen);

/* Loads the whole AdamW state m_in, v_in (n floats): each rank keeps its part. */
void sync_load_optimizer(trainer_sync *s, const float *m_in, const float *v_in, long t);

#endif /* GPT2_TRAINER_SYNC_H */
