/*
 * sweep.c - the sizes of one table section, as nccl-tests steps them: from -b, multiplied
 * by -f while -f > 1, otherwise increased by -i, up to -e. The flags are parsed (and an
 * empty sweep refused) in args.c; the harness walks the same sequence, so what was
 * checked is what runs.
 */
#include "harness_internal.h"

size_t hb_sweep_unit(const struct hb_collective *coll, mlcommDataType_t t, int nranks) {
  size_t bytes = hb_type_size(t);
  return coll->blocked ? bytes * (size_t)nranks : bytes;
}

void hb_sweep_begin(struct hb_sweep *w, const struct hb_args *a, size_t unit) {
  *w = (struct hb_sweep){.a = a, .unit = unit, .next_raw = a->min_bytes, .last = 0, .done = 0};
}

/* The raw size after s, or 0 past -e: multiplying 0 would stay at 0 forever, so a
 * sweep from -b 0 goes on from 1 byte; a step that would pass -e (or overflow) ends it. */
static size_t raw_after(const struct hb_args *a, size_t s) {
  if (a->factor > 1) {
    if (s == 0) return a->max_bytes >= 1 ? 1 : 0;
    return s > a->max_bytes / a->factor ? 0 : s * a->factor;
  }
  return a->step_bytes > a->max_bytes - s ? 0 : s + a->step_bytes;
}

int hb_sweep_next(struct hb_sweep *w, size_t *size) {
  while (!w->done) {
    size_t s = w->next_raw;
    size_t next = raw_after(w->a, s);
    if (next == 0) w->done = 1;
    w->next_raw = next;
    size_t rounded = s / w->unit * w->unit; /* whole elements (and whole blocks) only */
    if (rounded > 0 && rounded != w->last) {
      w->last = rounded;
      *size = rounded;
      return 1;
    }
  }
  return 0;
}
