/*
 * Cross-memory attach: a rank copies straight out of a peer's private buffer with
 * process_vm_readv(2), one copy instead of a copy into the segment and another out of
 * it. Used where the data has to cross once and nothing is computed on the way
 * (broadcast, allgather). It needs ptrace rights over the peer (same user, and Yama's
 * ptrace_scope not stricter than 1 for non-descendants, or CAP_SYS_PTRACE); a probe at
 * creation finds out, and every rank falls back to staging when any rank cannot.
 * MLCOMM_SHM_CMA=0 turns it off.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backends/shm/shm.h"

/* 0: never read a peer's private buffer (broadcast and allgather stage instead). */
MLCOMM_PARAM(ShmCma, "MLCOMM_SHM_CMA", 1, 0, 1);

mlcommResult_t shm_cma_probe(struct shm_state *st) {
  struct mlcomm_comm *comm = st->comm;
  st->probe_value = (uint64_t)getpid();
  st->ctls[st->rank]->probe_addr = (uint64_t)(uintptr_t)&st->probe_value;
  atomic_thread_fence(memory_order_seq_cst);
  MLCOMM_MPI_CHECK(comm, MPI_Barrier(comm->coll_comm));
  atomic_thread_fence(memory_order_seq_cst);
  int ok = mlcomm_param(comm, &mlcomm_param_ShmCma) != 0;
  for (int r = 0; r < st->n && ok; r++) {
    if (r == st->rank) continue;
    uint64_t got = 0;
    struct iovec local = {&got, sizeof got};
    struct iovec remote = {(void *)(uintptr_t)st->ctls[r]->probe_addr, sizeof got};
    ssize_t n = process_vm_readv(st->ctls[r]->pid, &local, 1, &remote, 1, 0);
    if (n != (ssize_t)sizeof got || got != (uint64_t)st->ctls[r]->pid) {
      MLCOMM_INFO("shm transport: cannot read rank %d's memory (%s); broadcast and allgather "
                  "stage through the segment",
                  r, n < 0 ? strerror(errno) : "wrong value");
      ok = 0;
    }
  }
  int all = 0;
  MLCOMM_MPI_CHECK(comm, MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm->coll_comm));
  st->cma = all != 0;
  return mlcommSuccess;
}

static bool transfer(struct shm_state *st, int rank, void *local, uint64_t addr, size_t bytes,
                     bool write) {
  char *mine = local;
  while (bytes > 0) {
    struct iovec l = {mine, bytes}, r = {(void *)(uintptr_t)addr, bytes};
    pid_t pid = st->ctls[rank]->pid;
    ssize_t n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0) : process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      if (err == EINTR) continue;
      shm_fail(st, err == ESRCH ? mlcommRemoteError : mlcommSystemError,
               "%s %zu bytes of rank %d's buffer (pid %d) with process_vm_%s failed: %s%s",
               write ? "writing" : "reading", bytes, rank, (int)pid, write ? "writev" : "readv",
               strerror(err), err == ESRCH ? " (it died)" : "");
      return false;
    }
    mine += n, addr += (uint64_t)n, bytes -= (size_t)n;
  }
  return true;
}

bool shm_cma_read(struct shm_state *st, int rank, void *local, uint64_t addr, size_t bytes) {
  return transfer(st, rank, local, addr, bytes, false);
}

bool shm_cma_write(struct shm_state *st, int rank, const void *local, uint64_t addr, size_t bytes) {
  return transfer(st, rank, (void *)local, addr, bytes, true);
}
