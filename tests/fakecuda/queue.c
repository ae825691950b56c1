/*
 * The deferred work of the fake "GPU": one in-order queue per process.
 *
 * CUDA orders work per stream; the fake orders all of a process's work in one queue,
 * whatever the stream. That is stronger than CUDA (work on two streams never overlaps
 * or reorders), never weaker, so it cannot hide a missing wait on the stream a caller
 * actually waits on, while keeping the model simple. Work runs only when a host thread
 * waits (event query or synchronize, stream or device synchronize, a synchronous copy
 * or memset, cudaFree): there is no device thread, so nothing completes "by itself"
 * and results read without a wait are stale.
 *
 * Two locks: `lock` guards the list and is never held while work runs; `exec` is held
 * while a thread runs work, so works run one at a time and in order. A work stays at
 * the head, marked running, until it has finished, so that fg_done_until never reports
 * a work done while another thread is still running it.
 */
#include <pthread.h>

#include "fakegpu.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t exec = PTHREAD_MUTEX_INITIALIZER;
static struct fg_work *head, *tail;
static uint64_t last_seq;

void fg_enqueue(struct fg_work *w) {
  pthread_mutex_lock(&lock);
  w->seq = ++last_seq;
  w->running = false;
  w->next = NULL;
  if (tail)
    tail->next = w;
  else
    head = w;
  tail = w;
  pthread_mutex_unlock(&lock);
}

uint64_t fg_queue_tail(void) {
  pthread_mutex_lock(&lock);
  uint64_t t = last_seq;
  pthread_mutex_unlock(&lock);
  return t;
}

bool fg_done_until(uint64_t mark) {
  pthread_mutex_lock(&lock);
  bool done = head == NULL || head->seq > mark;
  pthread_mutex_unlock(&lock);
  return done;
}

void fg_flush_until(uint64_t mark) {
  pthread_mutex_lock(&exec);
  for (;;) {
    pthread_mutex_lock(&lock);
    struct fg_work *w = head;
    if (w == NULL || w->seq > mark) {
      pthread_mutex_unlock(&lock);
      break;
    }
    w->running = true;
    pthread_mutex_unlock(&lock);

    w->run(w); /* may block in MPI: no list lock held */

    pthread_mutex_lock(&lock);
    head = w->next;
    if (head == NULL) tail = NULL;
    pthread_mutex_unlock(&lock);
    w->release(w);
  }
  pthread_mutex_unlock(&exec);
}

void fg_flush_all(void) { fg_flush_until(fg_queue_tail()); }

bool fg_drop_comm(const struct ncclComm *c) {
  struct fg_work *dropped = NULL, *prev = NULL;
  bool busy = false;
  pthread_mutex_lock(&lock);
  for (struct fg_work *w = head, *next; w; w = next) {
    next = w->next;
    if (w->uses_comm == NULL || !w->uses_comm(w, c)) {
      prev = w;
      continue;
    }
    if (w->running) { /* another thread is inside it: leave it be */
      busy = true;
      prev = w;
      continue;
    }
    if (prev)
      prev->next = next;
    else
      head = next;
    if (tail == w) tail = prev;
    w->next = dropped;
    dropped = w;
  }
  pthread_mutex_unlock(&lock);
  while (dropped) {
    struct fg_work *w = dropped;
    dropped = w->next;
    w->release(w);
  }
  return busy;
}
