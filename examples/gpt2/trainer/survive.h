/* survive.h - train_gpt2 --survive (with --sync diloco): when a rank dies, the others
 * carry on without it instead of ending the job.
 *
 * A collective of the step fails on every survivor with a dead rank named
 * (mlcommCommFailedRank); they shrink the communicator to themselves
 * (mlcommCommShrink), point the trainer at the new one and redo the collective that
 * failed. DiLoCo tolerates it best: its ranks train alone between outer steps, and an
 * outer step only averages the deltas of whoever is there, so the run goes on with the
 * survivors' data. It needs every rank on one node and `mpirun --enable-recovery`
 * (docs/fault_tolerance.md); after a shrink MPI_Finalize would wait for the dead rank,
 * so the process leaves with _exit once it has finished. */
#ifndef GPT2_TRAINER_SURVIVE_H
#define GPT2_TRAINER_SURVIVE_H

#include <stddef.h>

#include <mlcomm/mlcomm.h>

#include "sync.h"

typedef struct {
  int dead;             /* the rank that died (in the old communicator) */
  int old_rank, nranks; /* this rank before, and how many are left */
} survive_info;

/* After a collective on *comm failed: when a peer died, shrinks *comm to the survivors
 * (the old one is freed) and points s at the new one. 1: carry on and redo the call;
 * 0: no dead peer, or the shrink failed (err says why). */
int survive_shrink(mlcommComm_t *comm, trainer_sync *s, survive_info *info, char *err,
                   size_t errlen);

#endif /* GPT2_TRAINER_SURVIVE_H */
