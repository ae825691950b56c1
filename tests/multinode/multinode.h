/*
 * Shared by the parts of test_multinode (one program, several files): where every rank
 * of MPI_COMM_WORLD lives, and a collective case that can run on any communicator.
 *
 * The node of a rank is told by MPI alone (MPI_Get_processor_name), never by mlcomm,
 * so the checks of mlcomm's behaviour across nodes do not trust what they check.
 */
#ifndef MLCOMM_TESTS_MULTINODE_MULTINODE_H
#define MLCOMM_TESTS_MULTINODE_MULTINODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---------------------------------------------------------------- where ranks live */

struct mn_layout {
  int nnodes;     /* distinct processor names in MPI_COMM_WORLD */
  int node;       /* this rank's node: nodes are numbered by their lowest world rank */
  int local_rank; /* this rank's index among the ranks of its node, in world order */
  int local_size; /* ranks on this node */
  int *node_of;   /* node of each world rank, tc_nranks entries */
  bool have_shm;  /* this build can make a shm communicator of this node's ranks */
};
extern struct mn_layout mn;

/* ---------------------------------------------------------------- communicators */

/* An mlcomm communicator with an MPI communicator of the same ranks in the same order,
 * kept by the test itself to compare results across ranks without using mlcomm. */
struct mn_comm {
  mlcommComm_t comm;
  MPI_Comm mpi;
  int rank, nranks;
  const char *name; /* in failure messages: "world", "node 1", "cross-node 0" */
  uint64_t salt;    /* mixed into every seed, so two communicators' cases differ */
};

/* ---------------------------------------------------------------- collective cases */

enum mn_coll { MN_ALLREDUCE = 1, MN_BROADCAST, MN_REDUCE, MN_ALLGATHER, MN_REDUCESCATTER,
               MN_BARRIER };

/* One call with its buffers. count is what the public API takes: per rank for
 * AllGather and ReduceScatter, the whole buffer for the others. */
struct mn_case {
  const struct mn_comm *c;
  enum mn_coll coll;
  mlcommDataType_t type;
  mlcommRedOp_t op;
  size_t count;
  int inplace, root;
  /* set by mn_case_prepare */
  uint64_t seed, send_hash;
  void *send, *recv;
  char what[200];
  mlcommRequest_t req;
  bool started; /* the call (or the Async start) succeeded */
};

/* Allocates guarded buffers and fills the inputs. */
void mn_case_prepare(struct mn_case *k);
/* Calls the blocking form, or the Async form (then k->req must be waited for). */
void mn_case_start(struct mn_case *k, bool async);
/* Checks against the independent reference, checks that every rank holding the whole
 * result holds the same bytes (collective over k->c->mpi), frees the buffers. */
void mn_case_check(struct mn_case *k);
/* prepare, start, (test once and wait), check. */
void mn_run_case(const struct mn_comm *c, enum mn_coll coll, mlcommDataType_t type,
                 mlcommRedOp_t op, size_t count, int inplace, bool async, int root);

/* The collective matrix on c: every collective x float32, bfloat16, int64 x sum, max,
 * avg, in and out of place, blocking and Async, counts 0, 1, odd and a few MiB.
 * full: every combination at every count; otherwise a subset that still calls every
 * collective with every type, op and mode once. */
void mn_collectives(const struct mn_comm *c, bool full);
/* One Async call of every kind in flight at once on c, then waited for together. */
void mn_collectives_in_flight(const struct mn_comm *c);

/* ---------------------------------------------------------------- the other parts */

/* Point-to-point between every ordered pair of world ranks, and with wildcards. */
void mn_p2p(void);
/* Per-node and cross-node communicators from mlcommCommSplit, with collectives on
 * each and the transport auto must choose for each. */
void mn_split(void);

#endif
