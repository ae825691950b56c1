/*
 * Internal types shared by the core, the entry points and the transports.
 * Nothing here is visible outside libmlcomm.
 */
#ifndef MLCOMM_CORE_INTERNAL_H
#define MLCOMM_CORE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mlcomm/mlcomm.h"
#include "mlcomm_build_config.h"
#include "core/ops.h"

#define MLCOMM_ERRMSG_LEN 1024
#define MLCOMM_MAX_TRANSPORTS 4
#define MLCOMM_SEQ_RING 64 /* kinds of the last collectives, for timeout diagnosis */

struct mlcomm_op {
  enum mlcomm_op_kind kind;
  const void *sendbuf;
  void *recvbuf;
  size_t count; /* NCCL semantics: per rank for allgather/reduce-scatter */
  mlcommDataType_t dtype;
  mlcommRedOp_t redop;
  int root;
  int peer; /* send/recv; MLCOMM_ANY_SOURCE allowed for recv */
  int tag;
  uint64_t seq; /* collective or p2p sequence number on the comm */
  bool in_place;
  enum mlcomm_mem_kind send_mem, recv_mem; /* classified once, in mlcomm_enqueue */
  int send_dev, recv_dev; /* CUDA device ordinal of device/managed buffers, else -1 */
  int alg;               /* the transport's algorithm: pinned by tune (or -1), then run */
  mlcommStatus_t status; /* filled when the op completes */
  void *tstate;          /* the transport's per-op state */
};

struct mlcomm_comm;

/* A transport as registered in src/backends/registry.c (see transport.h). */
struct mlcomm_transport;

struct mlcomm_tune; /* see transport.h */

struct mlcomm_tinst {
  const struct mlcomm_transport *t;
  void *state;
  struct mlcomm_tune *tune; /* its scores and algorithm pins by kind and size */
};

enum mlcomm_req_state { MLCOMM_REQ_DEFERRED, MLCOMM_REQ_ACTIVE, MLCOMM_REQ_DONE };

struct mlcomm_request {
  struct mlcomm_comm *comm;
  const struct mlcomm_tinst *ti;
  struct mlcomm_op op;
  enum mlcomm_req_state state;
  mlcommResult_t result;
  double t_start;                /* when it started (for the trace log) */
  double t_first_test;           /* its first mlcommTest (the peer watch's clock) */
  bool orphan;                   /* its blocking caller gave up: free once done */
  bool user_visible;             /* an Async handle was returned to the caller */
  bool in_group;                 /* on this thread's open group list */
  bool released;                 /* released while in_group: GroupEnd frees it */
  mlcommStatus_t *group_status;  /* a blocking Recv inside a group writes here */
  uint64_t handle;
  struct mlcomm_request *prev, *next; /* the comm's list of live requests */
  struct mlcomm_request *group_next;  /* the thread's group list */
};

struct mlcomm_comm {
  uint32_t magic;
  MPI_Comm user_comm; /* what the caller passed, or a split's result */
  bool owns_user_comm; /* true for a split's result */
  MPI_Comm coll_comm; /* duplicate: collectives */
  MPI_Comm p2p_comm;  /* duplicate: the user's send/recv/probe */
  MPI_Comm diag_comm; /* duplicate: timeout diagnosis queries */
  int rank, nranks;
  int node_ranks, node_cpus; /* ranks of this comm on this node, and the CPUs they share */
  int nnodes;                /* nodes the comm spans */
  int node_ranks_min, node_ranks_max; /* ranks on the emptiest and fullest node */
  double spin_ms;            /* how long a wait spins before yielding (0: oversubscribed) */
  /* Bumped by a transport whenever a pending call advanced (a slice moved): waits
   * spin, rather than yield the CPU, while a long call is still moving. */
  uint64_t progress_ticks;
  /* True while a thread is inside a blocking call or wait on this communicator:
   * transports may then spin briefly on a peer's flag instead of returning at once. */
  bool waiting;
  mlcommConfig_t config; /* resolved: no UNDEF fields */
  int64_t *params; /* every MLCOMM_PARAM's value, read at creation (core/params.h) */
  struct mlcomm_tinst transports[MLCOMM_MAX_TRANSPORTS];
  int ntransports;
  uint64_t coll_seq; /* collectives started so far */
  uint64_t p2p_seq;
  uint8_t seq_kinds[MLCOMM_SEQ_RING];
  struct mlcomm_request *live; /* requests not yet released */
  struct mlcomm_request *spare; /* released requests kept for reuse (at most 8) */
  int nspare;
  int nlive;
  mlcommResult_t failed; /* sticky: set when a blocking call timed out */
  void *cuda_stream;     /* cudaStream_t for device work (mlcommCommSetStream); NULL: default */
  char last_error[MLCOMM_ERRMSG_LEN];
  struct mlcomm_comm *registry_next;
  /* failed peers (fault.c) */
  struct mlcomm_peer *peers; /* every rank's node, pid and start time */
  bool revoked;              /* every call fails with revoke_why */
  int failed_rank;           /* the first rank seen to fail, or -1 */
  double last_watch;         /* when a waiting call last checked its peers */
  char revoke_why[MLCOMM_ERRMSG_LEN / 2];
  char first_failure[MLCOMM_ERRMSG_LEN / 2]; /* the first RemoteError/Timeout sentence */
};

/* Who a rank is, to tell from here whether it died (a pid only means something on its
 * own node: host is a hash of MPI_Get_processor_name). */
struct mlcomm_peer {
  uint64_t host;
  int64_t start; /* /proc/<pid>/stat start time, -1 unknown */
  int32_t pid;
  int32_t pad;
};

/* ---- errors and logging (error.c) */
/* Records a formatted sentence as the last error of comm (if any) and of this thread,
 * logs it at warn level, and returns res, so call sites read `return mlcomm_error(...)`. */
mlcommResult_t mlcomm_error(struct mlcomm_comm *comm, mlcommResult_t res, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
mlcommResult_t mlcomm_verror(struct mlcomm_comm *comm, mlcommResult_t res, const char *fmt,
                             va_list ap);
void mlcomm_log(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mlcomm_debug_level(void);
/* Appends a formatted sentence to the NUL-terminated text in buf (size len), truncating. */
void mlcomm_append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void mlcomm_set_debug_level(int level);
/* Turns an MPI error code into a result with MPI's own error string in the sentence. */
mlcommResult_t mlcomm_mpi_error(struct mlcomm_comm *comm, int mpi_rc, const char *what);

#define MLCOMM_LOG_WARN 1
#define MLCOMM_LOG_INFO 2
#define MLCOMM_LOG_TRACE 3
#define MLCOMM_INFO(...) mlcomm_log(MLCOMM_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define MLCOMM_TRACE(...) mlcomm_log(MLCOMM_LOG_TRACE, __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failure, leaving a file:line trail at info level (MLCOMM_DEBUG=2). */
#define MLCOMM_CHECK(call)                                                                 \
  do {                                                                                     \
    mlcommResult_t res_ = (call);                                                          \
    if (res_ != mlcommSuccess) {                                                           \
      MLCOMM_INFO("%s -> %s", #call, mlcommGetErrorString(res_));                          \
      return res_;                                                                         \
    }                                                                                      \
  } while (0)

/* Checks an MPI call; the comm's last error gets MPI's message. */
#define MLCOMM_MPI_CHECK(comm, call)                                                       \
  do {                                                                                     \
    int mrc_ = (call);                                                                     \
    if (mrc_ != MPI_SUCCESS) {                                                             \
      MLCOMM_INFO("%s failed", #call);                                                     \
      return mlcomm_mpi_error((comm), mrc_, #call);                                        \
    }                                                                                      \
  } while (0)

/* ---- configuration (config.c) */
mlcommResult_t mlcomm_config_resolve(const mlcommConfig_t *user, const mlcommConfig_t *inherit,
                                     mlcommConfig_t *out);
/* MLCOMM_DEBUG as a level, 0 when unset or unparsable (creation reports the latter). */
int mlcomm_debug_from_env(void);

/* ---- communicators (comm.c) */
/* Validates a handle against the live registry; names `what` in the error. */
mlcommResult_t mlcomm_comm_check(struct mlcomm_comm *comm, const char *fn);
/* comm when it is a live communicator, else NULL: where an error may be recorded. */
struct mlcomm_comm *mlcomm_comm_or_null(struct mlcomm_comm *comm);
/* Every registered comm, for progress: calls fn on each. */
void mlcomm_comm_foreach(void (*fn)(struct mlcomm_comm *, void *), void *arg);

/* ---- failed peers and revocation (fault.c, shrink.c) */
/* The start time of a live process (/proc/<pid>/stat field 22); -1 when it is gone or a
 * zombie, so that a reused pid is not taken for the same process. */
int64_t mlcomm_proc_start_time(pid_t pid);
/* Collective over comm->coll_comm: fills comm->peers. */
mlcommResult_t mlcomm_peers_gather(struct mlcomm_comm *comm);
bool mlcomm_peer_local(const struct mlcomm_comm *comm, int r);
/* True when rank r is on this node and its process is gone (or a zombie). */
bool mlcomm_peer_dead(const struct mlcomm_comm *comm, int r);
/* While op waits (waited_ms so far): every MLCOMM_PEER_CHECK_MS, checks the peers op
 * waits for; a dead one revokes comm. True when comm is revoked. */
bool mlcomm_watch(struct mlcomm_comm *comm, const struct mlcomm_op *op, double waited_ms);
/* Revokes comm here (by: the rank that revoked it): every live request fails, the
 * transports tell their peers where they can, the sentence why becomes the last error. */
void mlcomm_comm_fail(struct mlcomm_comm *comm, int by, int failed_rank, const char *why);
/* mlcommCommRevoke's work: comm_fail, then a message to every peer. */
mlcommResult_t mlcomm_comm_revoke(struct mlcomm_comm *comm);
/* A request of comm finished with res: remembers the first failure and who failed. */
void mlcomm_note_failure(struct mlcomm_comm *comm, mlcommResult_t res);
/* Reads a peer's revocation notice, if one came. */
void mlcomm_revoke_serve(struct mlcomm_comm *comm);
/* Collective over mpi (taken over): a published communicator with inherit's settings. */
mlcommResult_t mlcomm_comm_from_mpi(struct mlcomm_comm **out, MPI_Comm mpi,
                                    const mlcommConfig_t *inherit, const char *fn);

/* ---- requests and progress (request.c) */
struct mlcomm_request *mlcomm_request_new(struct mlcomm_comm *comm);
void mlcomm_request_release(struct mlcomm_request *req);
mlcommResult_t mlcomm_request_start(struct mlcomm_request *req);
/* Completes a request that needs no transport (count 0) at once. */
void mlcomm_request_complete_now(struct mlcomm_request *req);
/* Groups (group.c) change a request's state only through these: it joins the open
 * group; whether GroupEnd should start it; it leaves the group (false when it was
 * released meanwhile and is now freed). */
void mlcomm_request_group_enter(struct mlcomm_request *req);
bool mlcomm_request_group_starts(const struct mlcomm_request *req);
bool mlcomm_request_group_leave(struct mlcomm_request *req);
/* mlcommCommAbort: fails every live request of comm with mlcommRemoteError, releasing
 * those no caller holds a handle to. */
void mlcomm_request_abandon_all(struct mlcomm_comm *comm);
/* Frees the comm's spare requests (destroy, abort). */
void mlcomm_request_free_spares(struct mlcomm_comm *comm);
/* Advances one request; true once it is DONE. */
bool mlcomm_request_progress(struct mlcomm_request *req);
/* Advances every live request on every comm (what any call into the library does). */
void mlcomm_progress_all(void);
/* Waits for one request (timeout, diagnosis); on completion releases it. For a
 * blocking caller (owned == true), a timeout orphans it. */
mlcommResult_t mlcomm_request_wait(struct mlcomm_request *req, mlcommStatus_t *status,
                                   bool owned);
/* The same, with the timeout counted from since_ms (mlcomm_now_ms) rather than from now:
 * a group's members share one deadline. */
mlcommResult_t mlcomm_request_wait_since(struct mlcomm_request *req, mlcommStatus_t *status,
                                         bool owned, double since_ms);
uint64_t mlcomm_handle_register(struct mlcomm_request *req);
struct mlcomm_request *mlcomm_handle_lookup(uint64_t handle);
double mlcomm_now_ms(void);
/* Lets the caller's thread breathe while waiting: spin, then yield, then short sleeps. */
void mlcomm_backoff(double waited_ms, double spin_ms);

/* ---- groups (group.c) */
bool mlcomm_group_active(void);
void mlcomm_group_add(struct mlcomm_request *req);

/* ---- the funnel every call goes through (collectives/enqueue.c) */
/* Validates op for comm (fn names the public function in errors), picks a transport,
 * and either starts it (returning the request) or records it in the current group. */
mlcommResult_t mlcomm_enqueue(struct mlcomm_comm *comm, const char *fn, struct mlcomm_op *op,
                              mlcommRequest_t *async_out, mlcommStatus_t *status);

/* ---- memory kinds (memkind.c) */
enum mlcomm_mem_kind mlcomm_mem_kind(const void *ptr);
/* The same, also giving the CUDA device ordinal of a device or managed buffer (-1
 * otherwise). One cudaPointerGetAttributes per pointer. */
enum mlcomm_mem_kind mlcomm_mem_classify(const void *ptr, int *device);
/* Whether a GPU is usable in this process (false without CUDA in the build). */
bool mlcomm_cuda_usable(void);

/* ---- topology (topology.c) */
/* Collective over comm: fills comm->node_ranks/node_cpus and reports them
 * (MLCOMM_DEBUG=INFO). */
void mlcomm_topology_note(struct mlcomm_comm *comm);

/* ---- timeout diagnosis (diag.c) */
/* Answers peers' "where are you?" queries; cheap, called while waiting. */
void mlcomm_diag_serve(struct mlcomm_comm *comm);
/* Asks every peer how far it got and appends a report to buf. */
void mlcomm_diag_report(struct mlcomm_comm *comm, const struct mlcomm_op *op, char *buf,
                        size_t len);

#endif
