/*
 * The per-communicator segment: created by rank 0 under an unguessable name with mode
 * 0600, mapped by every rank, and unlinked as soon as all have mapped it, so /dev/shm
 * holds nothing of it even if ranks are killed later. Each rank then touches its own
 * region first, so its pages land on its NUMA node (Linux's first-touch policy).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/shm/shm.h"

/* The segment's geometry (rank 0's values are used by every rank). */
MLCOMM_PARAM(ShmSmallBytes, "MLCOMM_SHM_SMALL_BYTES", 8192, 0, 1 << 20);
MLCOMM_PARAM(ShmSliceBytes, "MLCOMM_SHM_SLICE_BYTES", 256 << 10, 1024, 64 << 20);
MLCOMM_PARAM(ShmSlots, "MLCOMM_SHM_SLOTS", 4, 2, 64);
MLCOMM_PARAM(ShmPoolBytes, "MLCOMM_SHM_POOL_BYTES", (int64_t)1 << 30, 0, (int64_t)1 << 40);
MLCOMM_PARAM(ShmNtBytes, "MLCOMM_SHM_NT_BYTES", 8 << 20, -1, INT64_MAX);

#define SHM_MAGIC 0x6d6c636f6d6d5348ull
#define NAME_LEN 48

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

/* Rank 0's tuning, so that every rank computes the same geometry. */
struct shm_params {
  int64_t small_bytes, slice_bytes, slots, pool_bytes, nt_bytes;
  char name[NAME_LEN];
  int32_t ok;
  char why[200];
};

static void layout(struct shm_layout *lay, const struct shm_params *p, int n) {
  lay->small_bytes = round_up((size_t)(p->small_bytes > 0 ? p->small_bytes : SHM_LINE), SHM_LINE);
  lay->slice_bytes = round_up((size_t)p->slice_bytes, SHM_LINE);
  lay->slots = (size_t)p->slots;
  lay->nt_bytes = p->nt_bytes;
  lay->ctl_off = 0;
  lay->small_off = round_up(sizeof(struct shm_ctl), SHM_PAGE);
  lay->in_off = lay->small_off + round_up(SHM_SMALL_SLOTS * (lay->small_bytes + SHM_LINE), SHM_PAGE);
  lay->out_off = lay->in_off + lay->slots * lay->slice_bytes;
  lay->region_bytes = round_up(lay->out_off + lay->slots * lay->slice_bytes, SHM_PAGE);
  lay->regions_off = round_up(sizeof(struct shm_header), SHM_PAGE);
  lay->pool_off = lay->regions_off + (size_t)n * lay->region_bytes;
  lay->pool_bytes = round_up((size_t)p->pool_bytes, SHM_PAGE);
  lay->total_bytes = lay->pool_off + (size_t)n * lay->pool_bytes;
}

static void random_name(char *name) {
  unsigned char r[16];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    /* No entropy source: still unguessable enough to avoid collisions, and O_EXCL
     * plus mode 0600 keep it safe. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)name;
    memcpy(r, &x, sizeof x);
    memcpy(r + 8, &ts.tv_sec, sizeof x);
  }
  int k = snprintf(name, NAME_LEN, "/mlcomm-");
  for (size_t i = 0; i < sizeof r; i++) k += snprintf(name + k, (size_t)(NAME_LEN - k), "%02x", r[i]);
}

/* Rank 0: create, size, reserve the regions (so a full /dev/shm fails here, not with
 * SIGBUS later), and map. */
static int create(struct shm_params *p, size_t total, size_t reserve, int *fd, void **base) {
  random_name(p->name);
  *fd = shm_open(p->name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (*fd < 0) {
    snprintf(p->why, sizeof p->why, "shm_open(%s) failed: %s", p->name, strerror(errno));
    return -1;
  }
  int err = ftruncate(*fd, (off_t)total) != 0 ? errno : posix_fallocate(*fd, 0, (off_t)reserve);
  if (err != 0) {
    snprintf(p->why, sizeof p->why,
             "sizing the segment in /dev/shm (%zu bytes, %zu of them reserved) failed: %s; "
             "is /dev/shm full or small (df /dev/shm)? MLCOMM_SHM_POOL_BYTES sets the pool",
             total, reserve, strerror(err));
    return -1;
  }
  *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (*base == MAP_FAILED) {
    snprintf(p->why, sizeof p->why, "mmap of %zu bytes failed: %s", total, strerror(errno));
    return -1;
  }
  return 0;
}

static int attach(struct shm_params *p, size_t total, int *fd, void **base) {
  *fd = shm_open(p->name, O_RDWR, 0);
  if (*fd < 0) {
    snprintf(p->why, sizeof p->why, "shm_open(%s) failed: %s", p->name, strerror(errno));
    return -1;
  }
  *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (*base == MAP_FAILED) {
    snprintf(p->why, sizeof p->why, "mmap of %zu bytes failed: %s", total, strerror(errno));
    return -1;
  }
  return 0;
}

void shm_mapping_unref(struct shm_mapping *map) {
  if (map == NULL || __atomic_sub_fetch(&map->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  munmap(map->base, map->bytes);
  close(map->fd);
  struct shm_extent *lists[] = {map->free_list, map->used_list};
  for (int i = 0; i < 2; i++)
    for (struct shm_extent *e = lists[i], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  pthread_mutex_destroy(&map->lock);
  free(map);
}

uint64_t shm_pool_offset(const struct shm_state *st, const void *p, size_t len) {
  const char *lo = st->map->base + st->map->pool_off, *c = p;
  if (c == NULL || len == 0 || c < lo || (size_t)(c - lo) > st->map->pool_bytes ||
      len > st->map->pool_bytes - (size_t)(c - lo))
    return SHM_NO_OFF;
  return (uint64_t)(c - st->map->base);
}

mlcommResult_t shm_segment_create(struct shm_state *st) {
  struct mlcomm_comm *comm = st->comm;
  struct shm_params p = {.small_bytes = mlcomm_param(comm, &mlcomm_param_ShmSmallBytes),
                         .slice_bytes = mlcomm_param(comm, &mlcomm_param_ShmSliceBytes),
                         .slots = mlcomm_param(comm, &mlcomm_param_ShmSlots),
                         .pool_bytes = mlcomm_param(comm, &mlcomm_param_ShmPoolBytes),
                         .nt_bytes = mlcomm_param(comm, &mlcomm_param_ShmNtBytes),
                         .ok = 1};
  int fd = -1;
  void *base = MAP_FAILED;
  size_t total = 0;
  if (st->rank == 0) {
    layout(&st->lay, &p, st->n);
    total = st->lay.total_bytes;
    if (create(&p, total, st->lay.pool_off, &fd, &base) != 0) p.ok = 0;
  }
  MLCOMM_MPI_CHECK(comm, MPI_Bcast(&p, (int)sizeof p, MPI_BYTE, 0, comm->coll_comm));
  layout(&st->lay, &p, st->n);
  total = st->lay.total_bytes;
  if (st->rank != 0 && p.ok && attach(&p, total, &fd, &base) != 0) p.ok = 0;
  int ok = p.ok, all = 0;
  MLCOMM_MPI_CHECK(comm, MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm->coll_comm));
  if (st->rank == 0 && p.name[0]) shm_unlink(p.name); /* every rank has it mapped (or failed) */
  if (!all) {
    if (base != MAP_FAILED) munmap(base, total);
    if (fd >= 0) close(fd);
    return mlcomm_error(comm, mlcommSystemError, "shm transport: %s",
                        ok ? "another rank could not map the segment; see its error" : p.why);
  }
  st->map = calloc(1, sizeof *st->map);
  st->ctls = calloc((size_t)st->n, sizeof *st->ctls);
  st->regions = calloc((size_t)st->n, sizeof *st->regions);
  if (!st->map || !st->ctls || !st->regions) {
    munmap(base, total);
    close(fd);
    free(st->map);
    st->map = NULL;
    return mlcomm_error(comm, mlcommSystemError, "shm transport: out of memory");
  }
  *st->map = (struct shm_mapping){.base = base, .bytes = total, .fd = fd, .refs = 1,
                                  .pool_off = st->lay.pool_off + (size_t)st->rank * st->lay.pool_bytes,
                                  .pool_bytes = st->lay.pool_bytes};
  pthread_mutex_init(&st->map->lock, NULL);
  st->hdr = base;
  for (int r = 0; r < st->n; r++) {
    st->regions[r] = (char *)base + st->lay.regions_off + (size_t)r * st->lay.region_bytes;
    st->ctls[r] = (struct shm_ctl *)(st->regions[r] + st->lay.ctl_off);
  }
  /* First touch of this rank's own region, then who we are. */
  memset(st->regions[st->rank], 0, st->lay.region_bytes);
  st->ctls[st->rank]->pid = (int32_t)getpid();
  st->ctls[st->rank]->start_time = (uint64_t)mlcomm_proc_start_time(getpid());
  if (st->rank == 0) {
    st->hdr->magic = SHM_MAGIC;
    st->hdr->nranks = st->n;
    atomic_store(&st->hdr->aborted_by, 0);
  }
  atomic_thread_fence(memory_order_seq_cst);
  MLCOMM_MPI_CHECK(comm, MPI_Barrier(comm->coll_comm));
  atomic_thread_fence(memory_order_seq_cst);
  /* Pid liveness works when every peer is visible from here (not another pid namespace). */
  st->liveness = true;
  for (int r = 0; r < st->n; r++) {
    int64_t start = mlcomm_proc_start_time(st->ctls[r]->pid);
    if (start < 0 || (uint64_t)start != st->ctls[r]->start_time) st->liveness = false;
  }
  if (!st->liveness)
    MLCOMM_INFO("shm transport: peers' processes are not visible here (another pid namespace?); "
                "a dead peer is noticed only by the timeout");
  return mlcommSuccess;
}
