/*
 * Groups (NCCL semantics): calls between mlcommGroupStart and the outermost
 * mlcommGroupEnd are recorded, then started together in call order, so that a
 * rank's sends and receives are all posted before any of them is waited for.
 */
#include <stddef.h>
#include <stdlib.h>

#include "backends/transport.h"
#include "core/internal.h"

/* The only owner of the group depth: transports with a group notion of their own
 * (NCCL) are told when the outermost group begins and ends, through their hooks. */
static _Thread_local int group_depth;
static _Thread_local struct mlcomm_request *group_head, *group_tail;

bool mlcomm_group_active(void) { return group_depth > 0; }

void mlcomm_group_add(struct mlcomm_request *req) {
  mlcomm_request_group_enter(req);
  req->group_next = NULL;
  if (group_tail) group_tail->group_next = req;
  else group_head = req;
  group_tail = req;
}

MLCOMM_API mlcommResult_t mlcommGroupStart(void) {
  group_depth++;
  return mlcommSuccess;
}

#define GROUP_MAX_INSTANCES 64

/* The distinct transport instances among the members about to start, grouped by
 * transport, for the group hooks (one call per transport with all its instances). */
struct hooked {
  const struct mlcomm_transport *t;
  void *states[GROUP_MAX_INSTANCES];
  int n;
};

static int collect_hooked(struct mlcomm_request *list, struct hooked *out, int max) {
  int nt = 0;
  for (struct mlcomm_request *r = list; r; r = r->group_next) {
    if (!mlcomm_request_group_starts(r) || r->ti == NULL || r->ti->t->group_begin == NULL)
      continue;
    int k = 0;
    while (k < nt && out[k].t != r->ti->t) k++;
    if (k == nt) {
      if (nt == max) continue;
      out[nt++] = (struct hooked){.t = r->ti->t, .n = 0};
    }
    bool seen = false;
    for (int j = 0; j < out[k].n; j++) seen = seen || out[k].states[j] == r->ti->state;
    if (!seen && out[k].n < GROUP_MAX_INSTANCES) out[k].states[out[k].n++] = r->ti->state;
  }
  return nt;
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
  struct hooked hooked[MLCOMM_MAX_TRANSPORTS];
  int nhooked = collect_hooked(list, hooked, MLCOMM_MAX_TRANSPORTS);
  for (int k = 0; k < nhooked; k++) hooked[k].t->group_begin(hooked[k].states, hooked[k].n);
  /* A member may be gone already: its communicator aborted, or its handle waited on
   * and released. Only what is still deferred on a live communicator starts. */
  for (struct mlcomm_request *r = list; r; r = r->group_next) {
    if (!mlcomm_request_group_starts(r)) continue;
    mlcommResult_t res = mlcomm_request_start(r);
    if (res != mlcommSuccess && first == mlcommSuccess) first = res;
  }
  for (int k = nhooked - 1; k >= 0; k--) {
    mlcommResult_t res = hooked[k].t->group_end(hooked[k].states, hooked[k].n);
    if (res != mlcommSuccess && first == mlcommSuccess) first = res;
  }
  /* Blocking calls made inside the group complete here, against one deadline for the
   * whole group; Async ones belong to the caller, who waits for their handles. */
  double since = mlcomm_now_ms();
  struct mlcomm_request *r = list;
  while (r) {
    struct mlcomm_request *next = r->group_next;
    if (mlcomm_request_group_leave(r) && !r->user_visible) {
      mlcommResult_t res = mlcomm_request_wait_since(r, r->group_status, true, since);
      if (res != mlcommSuccess && first == mlcommSuccess) first = res;
    }
    r = next;
  }
  return first;
}
