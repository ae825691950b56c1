/* survive.c - the survivors of a dead rank shrink the communicator (see survive.h). */
#include "survive.h"

#include <stdio.h>

int survive_shrink(mlcommComm_t *comm, trainer_sync *s, survive_info *info, char *err,
                   size_t errlen) {
  int dead = -1;
  if (mlcommCommFailedRank(*comm, &dead) != mlcommSuccess || dead < 0) return 0;
  mlcommComm_t shrunk = MLCOMM_COMM_NULL;
  mlcommResult_t r = mlcommCommShrink(*comm, &shrunk);
  if (r != mlcommSuccess) {
    snprintf(err, errlen, "rank %d died, and the survivors could not shrink the communicator: %s",
             dead, mlcommGetLastError(*comm));
    return 0;
  }
  info->dead = dead;
  info->old_rank = s->rank;
  mlcommCommDestroy(*comm); /* revoked: freed here, as an abort is */
  *comm = s->comm = shrunk;
  mlcommCommRank(shrunk, &s->rank);
  mlcommCommCount(shrunk, &s->nranks);
  info->nranks = s->nranks;
  return 1;
}
