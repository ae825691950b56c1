/*
 * mlcomm.h - the one public header of libmlcomm.
 *
 * mlcomm is an MPI-native collective communication library for machine-learning
 * training and inference. Its API reads like NCCL's (rename nccl -> mlcomm), with
 * MPI-style asynchronous requests added: every call has a blocking form and an
 * "...Async" form that returns an mlcommRequest_t completed by mlcommWait/mlcommTest.
 *
 * Conventions shared by every function:
 *  - Every function returns an mlcommResult_t, except the constant-string lookups
 *    (mlcommGetErrorString, mlcommGetLastError and the ...Name functions). On failure
 *    nothing has been written to the caller's buffers, and mlcommGetLastError(comm)
 *    holds a sentence naming the argument or the peer and what to do.
 *  - The library never calls exit()/abort() and prints nothing unless MLCOMM_DEBUG asks.
 *  - Counts are in elements of the given datatype. For AllGather the count is what each
 *    rank contributes; for ReduceScatter it is what each rank receives (as in NCCL).
 *  - In place is allowed as in NCCL: sendbuff == recvbuff for AllReduce, Broadcast and
 *    Reduce; for AllGather sendbuff == recvbuff + rank*count; for ReduceScatter
 *    recvbuff == sendbuff + rank*recvcount. Other overlaps are refused.
 *  - count == 0 is legal everywhere and completes without touching the buffers, which
 *    may then be NULL.
 *  - Collectives on a communicator must be called in the same order on every rank.
 *  - Every wait is bounded by the communicator's timeout (mlcommConfig_t.timeoutMs).
 *    When a BLOCKING call times out, MPI may still own its buffers, so the
 *    communicator refuses later calls with mlcommRemoteError until it is aborted;
 *    the one exception is a receive that nothing matched yet, which is withdrawn
 *    cleanly (its buffer untouched, the communicator still usable). An Async request
 *    that times out in mlcommWait simply stays valid.
 *  - Threads: calls into mlcomm must be serialised process-wide (one thread in the
 *    library at a time, even on different communicators), because every wait also
 *    advances the requests of every communicator. MPI_THREAD_SERIALIZED suffices.
 */
#ifndef MLCOMM_MLCOMM_H
#define MLCOMM_MLCOMM_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MLCOMM_BUILDING_LIBRARY)
#define MLCOMM_API __attribute__((visibility("default")))
#else
#define MLCOMM_API
#endif

/* ---------------------------------------------------------------- versions */

#define MLCOMM_MAJOR 0
#define MLCOMM_MINOR 1
#define MLCOMM_PATCH 0
#define MLCOMM_VERSION(X, Y, Z) ((X) * 10000 + (Y) * 100 + (Z))
#define MLCOMM_VERSION_CODE MLCOMM_VERSION(MLCOMM_MAJOR, MLCOMM_MINOR, MLCOMM_PATCH)


/* ---------------------------------------------------------------- results */

typedef enum {
  mlcommSuccess = 0,
  mlcommInvalidArgument = 1, /* a bad argument; the last error names it */
  mlcommSystemError = 2,     /* an operating-system call failed (memory, files) */
  mlcommInternalError = 3,   /* a bug in mlcomm, or an MPI/CUDA call that failed */
  mlcommRemoteError = 4,     /* a peer failed, or the communicator was aborted */
  mlcommTimeout = 5,         /* a wait exceeded the communicator's timeout */
  mlcommInProgress = 6,      /* the communicator still has requests in flight */
  mlcommUnsupported = 7,     /* valid, but this build or transport cannot do it */
  mlcommNumResults = 8
} mlcommResult_t;

/* ---------------------------------------------------------------- types */

/* Values match NCCL's ncclDataType_t so code can be ported by renaming. */
typedef enum {
  mlcommInt8 = 0,
  mlcommChar = 0,
  mlcommUint8 = 1,
  mlcommInt32 = 2,
  mlcommInt = 2,
  mlcommUint32 = 3,
  mlcommInt64 = 4,
  mlcommUint64 = 5,
  mlcommFloat16 = 6,
  mlcommHalf = 6,
  mlcommFloat32 = 7,
  mlcommFloat = 7,
  mlcommFloat64 = 8,
  mlcommDouble = 8,
  mlcommBfloat16 = 9,
  mlcommNumTypes = 10
} mlcommDataType_t;

/* Reduction operations (NCCL's values). mlcommAvg is the sum divided by the number of
 * ranks; for integer types the division truncates toward zero after a wrapping sum. */
typedef enum {
  mlcommSum = 0,
  mlcommProd = 1,
  mlcommMax = 2,
  mlcommMin = 3,
  mlcommAvg = 4,
  mlcommNumOps = 5
} mlcommRedOp_t;

/* Transports. Auto picks, per call, the best transport able to carry the buffers. Hier
 * runs collectives of a communicator spanning nodes as shm inside each node and MPI
 * between nodes. */
typedef enum {
  mlcommTransportAuto = 0,
  mlcommTransportMpi = 1,
  mlcommTransportShm = 2,
  mlcommTransportNccl = 3,
  mlcommTransportHier = 4,
  mlcommNumTransports = 5
} mlcommTransport_t;

/* An opaque communicator handle. */
typedef struct mlcomm_comm *mlcommComm_t;
#define MLCOMM_COMM_NULL ((mlcommComm_t)0)

/* An opaque request handle. Wait/Test set it to MLCOMM_REQUEST_NULL once the request
 * has completed; a completed or unknown handle is refused, never dereferenced. */
typedef uint64_t mlcommRequest_t;
#define MLCOMM_REQUEST_NULL ((mlcommRequest_t)0)

/* What a completed receive (or a probe) found. For collectives and sends, source is
 * the calling rank, tag is -1 and bytes is count x type size (sendcount x size for
 * AllGather, nranks x recvcount x size for ReduceScatter, 0 for Barrier). */
typedef struct {
  int source;   /* rank that sent the message */
  int tag;      /* its tag */
  size_t bytes; /* its size in bytes */
} mlcommStatus_t;
#define MLCOMM_STATUS_IGNORE ((mlcommStatus_t *)0)

#define MLCOMM_ANY_SOURCE (-1) /* Recv/Probe peer wildcard */
#define MLCOMM_ANY_TAG (-1)    /* Recv/Probe tag wildcard */
#define MLCOMM_TAG_MAX 32767   /* user tags are 0..MLCOMM_TAG_MAX (MPI's guaranteed minimum) */
#define MLCOMM_SPLIT_NOCOLOR (-1)

/* ---------------------------------------------------------------- configuration */

/* A field left at MLCOMM_CONFIG_UNDEF_INT takes its MLCOMM_* environment variable, or
 * the default when that is unset. A field set explicitly wins over the environment. */
#define MLCOMM_CONFIG_UNDEF_INT INT_MIN
#define MLCOMM_CONFIG_MAGIC 0x4d4c434du /* "MLCM" */

typedef struct {
  size_t size;          /* sizeof(mlcommConfig_t) as compiled by the caller */
  unsigned int magic;   /* MLCOMM_CONFIG_MAGIC */
  unsigned int version; /* MLCOMM_VERSION_CODE as compiled by the caller */
  int transport;        /* mlcommTransport_t; env MLCOMM_TRANSPORT; default auto */
  int timeoutMs;        /* bound on every wait, 0 = none; env MLCOMM_TIMEOUT_MS; default 300000 */
  int debugLevel;       /* 0 silent, 1 warnings, 2 info, 3 trace; env MLCOMM_DEBUG; default 0 */
} mlcommConfig_t;

#define MLCOMM_CONFIG_INITIALIZER                                                    \
  {                                                                                  \
    sizeof(mlcommConfig_t), MLCOMM_CONFIG_MAGIC, MLCOMM_VERSION_CODE,                \
        MLCOMM_CONFIG_UNDEF_INT, MLCOMM_CONFIG_UNDEF_INT, MLCOMM_CONFIG_UNDEF_INT    \
  }

/* ---------------------------------------------------------------- errors, version */

/* Writes the loaded library's version (MLCOMM_VERSION encoding) to *version; compare
 * it with MLCOMM_VERSION_CODE to detect a header/library mismatch. */
MLCOMM_API mlcommResult_t mlcommGetVersion(int *version);

/* A short constant name for a result code ("invalid argument", ...). Never NULL. */
MLCOMM_API const char *mlcommGetErrorString(mlcommResult_t result);

/* The sentence describing the last failure on comm (which call, which argument or
 * rank, what to do). With comm == NULL (or an invalid handle), the last failure seen
 * by the calling thread. Empty string when nothing failed. Valid until the next call. */
MLCOMM_API const char *mlcommGetLastError(mlcommComm_t comm);

/* ---------------------------------------------------------------- names and sizes */

/* *size = bytes per element of datatype. A value that is not an mlcommDataType_t is
 * refused with mlcommInvalidArgument (*size is then 0). */
MLCOMM_API mlcommResult_t mlcommTypeSize(mlcommDataType_t datatype, size_t *size);

/* Constant names, never NULL ("unknown" for a value outside the enum). Datatypes and
 * ops use nccl-tests' spelling: int8 uint8 int32 uint32 int64 uint64 half float double
 * bfloat16; sum prod max min avg; transports: auto mpi shm nccl hier. */
MLCOMM_API const char *mlcommTypeName(mlcommDataType_t datatype);
MLCOMM_API const char *mlcommRedOpName(mlcommRedOp_t op);
MLCOMM_API const char *mlcommTransportName(mlcommTransport_t transport);

/* The reverse lookups, case-insensitive. Types also accept float16 fp16 float32 fp32
 * float64 fp64 bf16 char int. An unknown name is refused with mlcommInvalidArgument
 * and a sentence listing the accepted ones; the output is untouched then. */
MLCOMM_API mlcommResult_t mlcommTypeFromName(const char *name, mlcommDataType_t *datatype);
MLCOMM_API mlcommResult_t mlcommRedOpFromName(const char *name, mlcommRedOp_t *op);
MLCOMM_API mlcommResult_t mlcommTransportFromName(const char *name,
                                                  mlcommTransport_t *transport);

/* ---------------------------------------------------------------- communicators */

/* Collective over mpiComm: creates an mlcomm communicator with the same ranks. The
 * library duplicates mpiComm, so user traffic on mpiComm never meets its own. MPI must
 * be initialised. config may be NULL (all defaults / environment). Every rank first
 * agrees that all accepted their arguments and environment, so a bad value on one rank
 * fails them all. Like MPI_Comm_dup, this (and mlcommCommSplit) is set-up made of
 * blocking MPI calls: it is not bounded by the timeout. */
MLCOMM_API mlcommResult_t mlcommCommInitFromMPI(mlcommComm_t *comm, MPI_Comm mpiComm,
                                                const mlcommConfig_t *config);

/* Collective over comm: ranks passing the same color form a new communicator, ordered
 * by key (then by rank in comm). color == MLCOMM_SPLIT_NOCOLOR gives *newcomm = NULL.
 * config NULL inherits comm's settings. */
MLCOMM_API mlcommResult_t mlcommCommSplit(mlcommComm_t comm, int color, int key,
                                          mlcommComm_t *newcomm, const mlcommConfig_t *config);

/* Frees comm. Refused with mlcommInProgress (nothing freed) while requests are in
 * flight: wait for them, or call mlcommCommAbort. */
MLCOMM_API mlcommResult_t mlcommCommDestroy(mlcommComm_t comm);

/* Local, immediate: fails every request in flight on comm with mlcommRemoteError and
 * frees the handle. Use it when a peer has failed; buffers of collectives that MPI
 * still holds may be written until the peers finish or the job ends. On the
 * shared-memory transport it also releases every peer waiting on comm: their calls fail
 * with mlcommRemoteError naming this rank. */
MLCOMM_API mlcommResult_t mlcommCommAbort(mlcommComm_t comm);

/* Local, immediate: revokes comm. Every call pending on it here fails at once with
 * mlcommRemoteError, and so does every later one (mlcommCommDestroy excepted), on this
 * rank and, within a moment, on every surviving peer: the shared-memory transport tells
 * them through its segment, and a small message tells peers waiting in any mlcomm call.
 * The sentence (mlcommGetLastError) names the rank that failed first, when one is
 * known (a peer whose process is gone, on this node). The handle stays valid: build a
 * communicator of the survivors with mlcommCommShrink, then destroy this one (which
 * then frees it as mlcommCommAbort does: buffers of failed calls that MPI still holds
 * may be written until the job ends). Revoking twice is a no-op. A waiting call also
 * revokes comm by itself when a rank it waits for dies on this node (checked every
 * MLCOMM_PEER_CHECK_MS, 200 ms by default). */
MLCOMM_API mlcommResult_t mlcommCommRevoke(mlcommComm_t comm);

/* Collective over the surviving ranks of comm: *newcomm = a new communicator of every
 * rank of comm that is still alive, in the same order, with comm's settings; comm is
 * revoked first (as by mlcommCommRevoke) and stays to be destroyed. The survivors agree
 * on who died by point-to-point messages bounded by comm's timeout (a rank alive that
 * never calls it gives mlcommTimeout naming it), then MPI_Comm_create_group makes the
 * new MPI communicator among them alone. Deaths are seen by process id, so comm must lie
 * within one node: otherwise mlcommUnsupported (shrinking across nodes needs an MPI
 * with fault tolerance, ULFM's MPIX_Comm_shrink, which Open MPI 4.1 lacks). Under
 * Open MPI's mpirun the survivors live on only with --enable-recovery (mpirun kills the
 * job when a rank dies otherwise), and MPI_Finalize still waits for the dead rank: a
 * job that shrank should leave with exit status 0 after its last output
 * (docs/fault_tolerance.md). */
MLCOMM_API mlcommResult_t mlcommCommShrink(mlcommComm_t comm, mlcommComm_t *newcomm);

/* *rank = the first rank of comm seen to fail (its process gone on this node, or named
 * by the peer that revoked comm), or -1 when none is known. */
MLCOMM_API mlcommResult_t mlcommCommFailedRank(mlcommComm_t comm, int *rank);

/* This process's rank in comm, and the number of ranks. */
MLCOMM_API mlcommResult_t mlcommCommRank(mlcommComm_t comm, int *rank);
MLCOMM_API mlcommResult_t mlcommCommCount(mlcommComm_t comm, int *count);

/* The MPI communicator comm was created from (not the library's duplicate). */
MLCOMM_API mlcommResult_t mlcommCommGetMPI(mlcommComm_t comm, MPI_Comm *mpiComm);

/* The settings in force on comm after the environment was applied. */
MLCOMM_API mlcommResult_t mlcommCommGetConfig(mlcommComm_t comm, mlcommConfig_t *config);

/* Local: the CUDA stream (a cudaStream_t passed as void *, so this header needs no CUDA
 * headers) on which comm's device work is ordered from now on: NCCL collectives and
 * send/recv, and the shm transport's staging copies of device buffers. NULL (the
 * default) is CUDA's legacy default stream. Work the caller queued on the stream before
 * a call is seen by it; a call is complete (its request done) once the work it queued
 * on the stream has finished, which mlcommTest checks without blocking (CUDA events).
 * The stream must stay valid until the requests using it are complete. Without CUDA in
 * the build a non-NULL stream is refused with mlcommUnsupported. */
MLCOMM_API mlcommResult_t mlcommCommSetStream(mlcommComm_t comm, void *stream);
MLCOMM_API mlcommResult_t mlcommCommGetStream(mlcommComm_t comm, void **stream);

/* ---------------------------------------------------------------- memory */

/* Local (not collective): *ptr = bytes of host memory, 64-byte aligned, that the
 * communicator's transport can use without copying. On the shared-memory transport
 * it lies inside comm's shared segment, so collectives on it skip the copy in and out;
 * elsewhere it is ordinary page-aligned host memory. bytes must be > 0. The memory
 * stays valid until mlcommMemFree, even after comm is destroyed or aborted. Fails with
 * mlcommSystemError (and a sentence naming /dev/shm and the size) when the node has no
 * room. */
MLCOMM_API mlcommResult_t mlcommMemAlloc(mlcommComm_t comm, size_t bytes, void **ptr);

/* Frees memory from mlcommMemAlloc. NULL is a no-op; any other pointer that did not come
 * from mlcommMemAlloc is refused with mlcommInvalidArgument, and memory still used by a
 * request in flight with mlcommInProgress (nothing is freed then). */
MLCOMM_API mlcommResult_t mlcommMemFree(void *ptr);

/* ---------------------------------------------------------------- collectives */

/* recvbuff[i] = op over all ranks of sendbuff[i], on every rank. */
MLCOMM_API mlcommResult_t mlcommAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, mlcommRedOp_t op,
                                          mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommAllReduceAsync(const void *sendbuff, void *recvbuff,
                                               size_t count, mlcommDataType_t datatype,
                                               mlcommRedOp_t op, mlcommComm_t comm,
                                               mlcommRequest_t *request);

/* recvbuff = root's sendbuff on every rank. sendbuff is read on root only (may be NULL
 * elsewhere). */
MLCOMM_API mlcommResult_t mlcommBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, int root,
                                          mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommBroadcastAsync(const void *sendbuff, void *recvbuff,
                                               size_t count, mlcommDataType_t datatype,
                                               int root, mlcommComm_t comm,
                                               mlcommRequest_t *request);

/* recvbuff on root = op over all ranks of sendbuff. recvbuff is written on root only
 * (may be NULL elsewhere). */
MLCOMM_API mlcommResult_t mlcommReduce(const void *sendbuff, void *recvbuff, size_t count,
                                       mlcommDataType_t datatype, mlcommRedOp_t op, int root,
                                       mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommReduceAsync(const void *sendbuff, void *recvbuff, size_t count,
                                            mlcommDataType_t datatype, mlcommRedOp_t op,
                                            int root, mlcommComm_t comm,
                                            mlcommRequest_t *request);

/* recvbuff (nranks*sendcount elements) = every rank's sendbuff, in rank order. */
MLCOMM_API mlcommResult_t mlcommAllGather(const void *sendbuff, void *recvbuff,
                                          size_t sendcount, mlcommDataType_t datatype,
                                          mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommAllGatherAsync(const void *sendbuff, void *recvbuff,
                                               size_t sendcount, mlcommDataType_t datatype,
                                               mlcommComm_t comm, mlcommRequest_t *request);

/* sendbuff has nranks*recvcount elements; rank r receives block r of their reduction. */
MLCOMM_API mlcommResult_t mlcommReduceScatter(const void *sendbuff, void *recvbuff,
                                              size_t recvcount, mlcommDataType_t datatype,
                                              mlcommRedOp_t op, mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommReduceScatterAsync(const void *sendbuff, void *recvbuff,
                                                   size_t recvcount, mlcommDataType_t datatype,
                                                   mlcommRedOp_t op, mlcommComm_t comm,
                                                   mlcommRequest_t *request);

/* Returns once every rank has entered the barrier. */
MLCOMM_API mlcommResult_t mlcommBarrier(mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommBarrierAsync(mlcommComm_t comm, mlcommRequest_t *request);

/* ---------------------------------------------------------------- point to point */

/* Sends count elements to peer with tag (0..MLCOMM_TAG_MAX). */
MLCOMM_API mlcommResult_t mlcommSend(const void *sendbuff, size_t count,
                                     mlcommDataType_t datatype, int peer, int tag,
                                     mlcommComm_t comm);
MLCOMM_API mlcommResult_t mlcommSendAsync(const void *sendbuff, size_t count,
                                          mlcommDataType_t datatype, int peer, int tag,
                                          mlcommComm_t comm, mlcommRequest_t *request);

/* Receives a message of at most count elements from peer (or MLCOMM_ANY_SOURCE) with
 * tag (or MLCOMM_ANY_TAG); status (may be NULL) tells who sent it and how many bytes.
 * A message larger than the buffer is refused with mlcommInvalidArgument and is NOT
 * consumed: probe it, size a buffer, and receive it again. Messages from one sender
 * with one tag arrive in the order they were sent. */
MLCOMM_API mlcommResult_t mlcommRecv(void *recvbuff, size_t count, mlcommDataType_t datatype,
                                     int peer, int tag, mlcommComm_t comm,
                                     mlcommStatus_t *status);
MLCOMM_API mlcommResult_t mlcommRecvAsync(void *recvbuff, size_t count,
                                          mlcommDataType_t datatype, int peer, int tag,
                                          mlcommComm_t comm, mlcommRequest_t *request);

/* Blocks until a message matching peer/tag (wildcards allowed) is available and
 * describes it in *status without receiving it. The next matching mlcommRecv gets
 * exactly that message. */
MLCOMM_API mlcommResult_t mlcommProbe(int peer, int tag, mlcommComm_t comm,
                                      mlcommStatus_t *status);
/* As mlcommProbe, but returns at once: *found is 1 and *status filled when a matching
 * message is available, 0 otherwise. */
MLCOMM_API mlcommResult_t mlcommIprobe(int peer, int tag, mlcommComm_t comm, int *found,
                                       mlcommStatus_t *status);

/* ---------------------------------------------------------------- requests */

/* Waits for *request (bounded by the communicator's timeout). On completion, success
 * or failure, the request is released and *request set to MLCOMM_REQUEST_NULL; on
 * mlcommTimeout it stays valid and may be waited again. status may be NULL.
 * MLCOMM_REQUEST_NULL itself is refused with mlcommInvalidArgument (Wait and Test);
 * only WaitAll skips such entries. */
MLCOMM_API mlcommResult_t mlcommWait(mlcommRequest_t *request, mlcommStatus_t *status);

/* Makes progress and returns at once: *done = 1 when the request has completed (it is
 * then released as by mlcommWait), 0 when it is still running. */
MLCOMM_API mlcommResult_t mlcommTest(mlcommRequest_t *request, int *done,
                                     mlcommStatus_t *status);

/* Waits for all count requests (any order of completion). MLCOMM_REQUEST_NULL entries
 * are skipped. Returns the first failure met; every request that completed is released.
 * statuses may be NULL, otherwise an array of count. */
MLCOMM_API mlcommResult_t mlcommWaitAll(int count, mlcommRequest_t *requests,
                                        mlcommStatus_t *statuses);

/* ---------------------------------------------------------------- groups */

/* Between GroupStart and GroupEnd (per thread, nestable), calls are recorded instead of
 * started. The outermost GroupEnd starts them all together and, for the blocking forms,
 * waits for them; Async forms inside a group return requests that start at GroupEnd.
 * A ring of blocking Send+Recv pairs inside one group therefore cannot deadlock. */
MLCOMM_API mlcommResult_t mlcommGroupStart(void);
MLCOMM_API mlcommResult_t mlcommGroupEnd(void);

#ifdef __cplusplus
}
#endif

#endif /* MLCOMM_MLCOMM_H */
