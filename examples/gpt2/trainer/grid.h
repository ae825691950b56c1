/*
 * grid.h - the ranks as a tensor x pipeline x data grid, and its communicators.
 *
 * World rank w = tp + TP * (pp + PP * dp): tensor-parallel ranks are neighbours, so with
 * ranks placed in order a tensor-parallel group sits on one node (it talks the most:
 * four all-reduces per layer per micro-batch), pipeline stages next, data-parallel
 * replicas outermost (one all-reduce of the gradients per step).
 *
 * Communicators, all split from the world with mlcommCommSplit:
 *   tp   the TP ranks of one stage of one replica (size TP)
 *   pp   the stages of one replica that hold the same tensor part (size PP)
 *   dp   the replicas of one (stage, tensor part) (size DP)
 *   emb  the first and the last stage of a pp group, which both hold wte (the tied
 *        embedding and output head); NULL on other stages and when PP is 1
 */
#ifndef GPT2_TRAINER_GRID_H
#define GPT2_TRAINER_GRID_H

#include <stddef.h>

#include <mlcomm/mlcomm.h>

#include "gpt2.h"
#include "options.h"

enum { TRAFFIC_TP, TRAFFIC_PP, TRAFFIC_EMB, TRAFFIC_DP, TRAFFIC_GROUPS };

typedef struct {
  int tp, pp, dp;                /* sizes */
  int tp_rank, pp_rank, dp_rank; /* this rank's place */
  int rank, nranks;              /* in the world */
  mlcommComm_t world, tp_comm, pp_comm, dp_comm, emb_comm;
  /* bytes this rank handed to mlcomm (send buffers) per group, and seconds inside
   * mlcomm calls, since the counters were last cleared */
  double bytes[TRAFFIC_GROUPS];
  double comm_seconds;
} grid;

/* Checks the layout against the world size and the model's shape: TP x PP x DP must be
 * the rank count (DP 0: world / (TP x PP)), TP must divide NH and 4C, PP the layer count,
 * --micro-batches the rows -b; --sync allreduce or zero1 combines the replicas. Sets
 * *dp. err names the flag. Local: every rank reaches the same verdict. */
int grid_check(const train_options *o, const gpt2_config *cfg, int nranks, int *dp, char *err,
               size_t errlen);

/* Collective over world: fills g and splits the communicators. */
int grid_split(grid *g, mlcommComm_t world, int tp, int pp, int dp, char *err, size_t errlen);
void grid_free(grid *g);

/* Model parallelism is asked for (the plain data-parallel trainer runs otherwise). */
int grid_wanted(const train_options *o);

double grid_now(void);

/* Runs an mlcomm call, adding its time to g->comm_seconds and bytes to group's count;
 * evaluates to the call's result. */
#define GRID_CALL(g, group, nbytes, call)                 \
  ({                                                       \
    double t0_ = grid_now();                               \
    mlcommResult_t r_ = (call);                            \
    (g)->comm_seconds += grid_now() - t0_;                 \
    (g)->bytes[group] += (double)(nbytes);                 \
    r_;                                                    \
  })

#endif /* GPT2_TRAINER_GRID_H */
