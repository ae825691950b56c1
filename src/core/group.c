/*
 * Groups (NCCL semantics): calls between mlcommGroupStart and the outermost
 * mlcommGroupEnd are recorded, then started together in call order, so that a
 * rank's sends and receives are all posted before any of them is waited for.
 */
#include <stddef.h>
#include <stdlib.h>

#include "backends/transport.h"
#include "core/internal.h"

static _Thread_local int group_depth;
static _Thread_local struct mlcomm_request *group_head, *group_tail;

bool mlcomm_group_active(void) { return group_depth > 0; }

void mlcomm_group_add(struct mlcomm_request *req) {
  req->in_group = true;
  req->group_next = NULL;
  if (group_tail) group_tail->group_next = req;
  else group_head = req;
  group_tail = req;
}

MLCOMM_API mlcommResult_t mlcommGroupStart(void) {
  group_depth++;
  return mlcommSuccess;
}

MLCOMM_API mlcommResult_t mlcommGroupEnd(void) {
  if (group_depth == 0)
    return mlcomm_error(NULL, mlcommInvalidArgument,
                        "mlcommGroupEnd: no group is open (mlcommGroupStart was not called on "
                        "this thread)");
  if (--group_depth > 0) return mlcommSuccess;
  struct mlcomm_request *list = group_head;
  group_head = group_tail = NULL;

  mlcommResult_t first = mlcommSuccess;
  /* A member may be gone already: its communicator aborted, or its handle waited on
   * and released. Only what is still deferred on a live communicator starts. */
#define STARTS(r) (!(r)->released && (r)->comm != NULL && (r)->state == MLCOMM_REQ_DEFERRED)
  /* Transports with a group notion of their own (NCCL) open it once per instance. */
  const struct mlcomm_tinst *opened[64];
  int nopened = 0;
  for (struct mlcomm_request *r = list; r; r = r->group_next) {
    if (!STARTS(r) || r->ti == NULL || r->ti->t->group_begin == NULL) continue;
    bool seen = false;
    for (int k = 0; k < nopened; k++) seen = seen || opened[k] == r->ti;
    if (seen || nopened == 64) continue;
    opened[nopened++] = r->ti;
    r->ti->t->group_begin(r->ti->state);
  }
  for (struct mlcomm_request *r = list; r; r = r->group_next) {
    if (!STARTS(r)) continue;
    mlcommResult_t res = mlcomm_request_start(r);
    if (res != mlcommSuccess && first == mlcommSuccess) first = res;
  }
  for (int k = nopened - 1; k >= 0; k--) {
    mlcommResult_t res = opened[k]->t->group_end(opened[k]->state);
    if (res != mlcommSuccess && first == mlcommSuccess) first = res;
  }
#undef STARTS
  /* Blocking calls made inside the group complete here, against one deadline for the
   * whole group; Async ones belong to the caller, who waits for their handles. */
  double since = mlcomm_now_ms();
  struct mlcomm_request *r = list;
  while (r) {
    struct mlcomm_request *next = r->group_next;
    r->in_group = false;
    if (r->released) {
      free(r);
    } else if (!r->user_visible) {
      mlcommResult_t res = mlcomm_request_wait_since(r, r->group_status, true, since);
      if (res != mlcommSuccess && first == mlcommSuccess) first = res;
    }
    r = next;
  }
  return first;
}
