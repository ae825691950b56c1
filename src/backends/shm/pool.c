/*
 * mlcommMemAlloc on the shared-memory transport: page-aligned pieces of this rank's
 * pool inside the segment, so peers read and write them in place. First fit over a
 * sorted free list; pages are reserved in /dev/shm on allocation (a full /dev/shm is
 * an error now, not a SIGBUS later) and handed back to the system on free.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backends/shm/shm.h"

static struct shm_extent *extent(size_t off, size_t len, struct shm_extent *next) {
  struct shm_extent *e = malloc(sizeof *e);
  if (e) *e = (struct shm_extent){off, len, next};
  return e;
}

mlcommResult_t shm_mem_alloc(void *state, size_t bytes, void **ptr, void **cookie) {
  struct shm_state *st = state;
  struct shm_mapping *map = st->map;
  if (bytes > map->pool_bytes) return mlcommUnsupported;
  size_t len = (bytes + SHM_PAGE - 1) / SHM_PAGE * SHM_PAGE;
  pthread_mutex_lock(&map->lock);
  if (map->free_list == NULL && map->used_list == NULL && map->pool_bytes > 0)
    map->free_list = extent(0, map->pool_bytes, NULL); /* first use */
  struct shm_extent **pe = &map->free_list;
  while (*pe && (*pe)->len < len) pe = &(*pe)->next;
  struct shm_extent *fe = *pe, *used = fe ? extent(fe->off, len, map->used_list) : NULL;
  if (fe == NULL || used == NULL) {
    pthread_mutex_unlock(&map->lock);
    free(used);
    MLCOMM_INFO("shm pool: no free range of %zu bytes (MLCOMM_SHM_POOL_BYTES=%zu per rank); "
                "falling back to host memory",
                len, map->pool_bytes);
    return mlcommUnsupported;
  }
  int err = posix_fallocate(map->fd, (off_t)(map->pool_off + fe->off), (off_t)len);
  if (err != 0) {
    pthread_mutex_unlock(&map->lock);
    free(used);
    return mlcomm_error(st->comm, mlcommSystemError,
                        "mlcommMemAlloc: reserving %zu bytes in /dev/shm failed: %s (df /dev/shm "
                        "shows its room)",
                        len, strerror(err));
  }
  map->used_list = used;
  fe->off += len;
  fe->len -= len;
  if (fe->len == 0) {
    *pe = fe->next;
    free(fe);
  }
  __atomic_add_fetch(&map->refs, 1, __ATOMIC_ACQ_REL);
  pthread_mutex_unlock(&map->lock);
  *ptr = map->base + map->pool_off + used->off;
  *cookie = map;
  return mlcommSuccess;
}

void shm_mem_free(void *cookie, void *ptr) {
  struct shm_mapping *map = cookie;
  size_t off = (size_t)((char *)ptr - (map->base + map->pool_off));
  pthread_mutex_lock(&map->lock);
  struct shm_extent **pu = &map->used_list;
  while (*pu && (*pu)->off != off) pu = &(*pu)->next;
  struct shm_extent *u = *pu;
  if (u == NULL) { /* the core only passes pointers it recorded */
    pthread_mutex_unlock(&map->lock);
    return;
  }
  *pu = u->next;
  /* Give the pages back to /dev/shm. */
  fallocate(map->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            (off_t)(map->pool_off + u->off), (off_t)u->len);
  /* Insert sorted, then merge with the neighbours. */
  struct shm_extent **pf = &map->free_list;
  while (*pf && (*pf)->off < u->off) pf = &(*pf)->next;
  u->next = *pf;
  *pf = u;
  if (u->next && u->off + u->len == u->next->off) {
    struct shm_extent *n = u->next;
    u->len += n->len;
    u->next = n->next;
    free(n);
  }
  for (struct shm_extent *e = map->free_list; e && e != u; e = e->next)
    if (e->next == u && e->off + e->len == u->off) {
      e->len += u->len;
      e->next = u->next;
      free(u);
      break;
    }
  pthread_mutex_unlock(&map->lock);
  shm_mapping_unref(map);
}
