/*
 * Helpers for the shared-memory transport's tests: see shm_common.h.
 */
#include "shm_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- buffers */

enum { GUARD = 256, MIN_BODY = 64, PATTERN = 4093 /* prime: no element size divides it */ };

static unsigned char guard_byte(size_t j) { return (unsigned char)(0x5au ^ (j * 13u)); }
static unsigned char body_byte(size_t j) { return (unsigned char)(0x3cu + j * 41u + (j >> 9)); }

/* The body pattern repeats every PATTERN bytes; filled and compared by blocks. */
static const unsigned char *pattern(void)
{
  static unsigned char block[PATTERN];
  static bool ready;
  if (!ready) {
    for (size_t j = 0; j < PATTERN; j++) block[j] = body_byte(j);
    ready = true;
  }
  return block;
}

const char *tb_kind_name(int kind) { return kind == TB_POOL ? "pool" : "malloc"; }

void tb_alloc(tbuf_t *b, mlcommComm_t comm, int kind, size_t bytes)
{
  size_t body = bytes < MIN_BODY ? MIN_BODY : bytes;
  size_t total = GUARD + ((body + 63) & ~(size_t)63) + GUARD;
  void *base = NULL;
  if (kind == TB_POOL) {
    mlcommResult_t r = mlcommMemAlloc(comm, total, &base);
    if (!CHECK(r == mlcommSuccess && base != NULL,
               "mlcommMemAlloc(%zu bytes) returned %d (%s): %s", total, (int)r,
               mlcommGetErrorString(r), mlcommGetLastError(comm))) {
      kind = TB_MALLOC;
      base = NULL;
    }
  }
  if (base == NULL) base = aligned_alloc(64, total);
  if (base == NULL) {
    fprintf(stderr, "FAIL [rank %d] out of memory for %zu bytes\n", tc_rank, total);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  b->base = base;
  b->body = b->base + GUARD;
  b->bytes = bytes;
  b->kind = kind;
  for (size_t j = 0; j < GUARD; j++) {
    b->base[j] = guard_byte(j);
    b->body[body + j] = guard_byte(j + GUARD);
  }
  const unsigned char *pat = pattern();
  for (size_t j = 0; j < body; j += PATTERN)
    memcpy(b->body + j, pat, body - j < PATTERN ? body - j : PATTERN);
}

void tb_free(tbuf_t *b)
{
  if (b->base == NULL) return;
  if (b->kind == TB_POOL) {
    mlcommResult_t r = mlcommMemFree(b->base);
    CHECK(r == mlcommSuccess, "mlcommMemFree of a finished buffer returned %d (%s): %s", (int)r,
          mlcommGetErrorString(r), mlcommGetLastError(NULL));
  } else {
    free(b->base);
  }
  b->base = b->body = NULL;
}

bool tb_pattern_intact(const tbuf_t *b, size_t from, size_t to)
{
  const unsigned char *pat = pattern();
  size_t j = from;
  for (; j < to && j % PATTERN != 0; j++)
    if (b->body[j] != pat[j % PATTERN]) return false;
  for (; j < to; j += PATTERN)
    if (memcmp(b->body + j, pat, to - j < PATTERN ? to - j : PATTERN) != 0) return false;
  return true;
}

bool tb_gcheck_at(const char *file, int line, const tbuf_t *b, const char *what)
{
  if (b->base == NULL) return true;
  size_t body = b->bytes < MIN_BODY ? MIN_BODY : b->bytes;
  size_t before = 0, after = 0;
  for (size_t j = 0; j < GUARD; j++) {
    if (b->base[j] != guard_byte(j)) before++;
    if (b->body[body + j] != guard_byte(j + GUARD)) after++;
  }
  return tc_check(before == 0 && after == 0, file, line,
                  "%s: guard bytes written around a %zu-byte %s buffer (%zu before, %zu after)",
                  what, b->bytes, tb_kind_name(b->kind), before, after);
}

/* ---------------------------------------------------------------- segments */

static const char SEG_PREFIX[] = "/dev/shm/mlcomm-";
static const char DELETED[] = " (deleted)";

struct seg {
  uintptr_t lo, hi;
  bool deleted;
  char path[256];
};

/* The mappings of /dev/shm/mlcomm-* files listed in /proc/self/maps. */
static int read_segments(struct seg *out, int max)
{
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL) return 0;
  char line[1024];
  int n = 0;
  while (n < max && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int off = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || off == 0) continue;
    char *path = line + off;
    path[strcspn(path, "\n")] = '\0';
    if (strncmp(path, SEG_PREFIX, sizeof SEG_PREFIX - 1) != 0) continue;
    struct seg *s = &out[n++];
    s->lo = lo;
    s->hi = hi;
    size_t len = strlen(path), dl = sizeof DELETED - 1;
    s->deleted = len > dl && strcmp(path + len - dl, DELETED) == 0;
    if (s->deleted) path[len - dl] = '\0';
    snprintf(s->path, sizeof s->path, "%s", path);
  }
  fclose(f);
  return n;
}

enum { MAX_SEGS = 512 };

bool ts_in_segment(const void *p)
{
  static struct seg segs[MAX_SEGS];
  int n = read_segments(segs, MAX_SEGS);
  for (int i = 0; i < n; i++)
    if ((uintptr_t)p >= segs[i].lo && (uintptr_t)p < segs[i].hi) return true;
  return false;
}

/* Distinct paths among segs[0..n), moved to the front; returns how many. */
static int distinct(struct seg *segs, int n)
{
  int k = 0;
  for (int i = 0; i < n; i++) {
    bool seen = false;
    for (int j = 0; j < k && !seen; j++) seen = strcmp(segs[j].path, segs[i].path) == 0;
    if (seen) {
      /* a mapping of a file seen before: merge the "deleted" flag pessimistically */
      for (int j = 0; j < k; j++)
        if (strcmp(segs[j].path, segs[i].path) == 0) segs[j].deleted &= segs[i].deleted;
      continue;
    }
    segs[k++] = segs[i];
  }
  return k;
}

int ts_mapped_segments(void)
{
  static struct seg segs[MAX_SEGS];
  return distinct(segs, read_segments(segs, MAX_SEGS));
}

void ts_check_unlinked_at(const char *file, int line, bool want_some, bool print,
                          const char *what)
{
  static struct seg segs[MAX_SEGS];
  int n = distinct(segs, read_segments(segs, MAX_SEGS));
  if (want_some)
    tc_check(n > 0, file, line,
             "%s: no mapping of a /dev/shm/mlcomm-* segment in /proc/self/maps (the shared-"
             "memory transport maps its segment under that name)",
             what);
  for (int i = 0; i < n; i++) {
    if (print) printf("SEGMENT %s\n", segs[i].path);
    bool gone = access(segs[i].path, F_OK) != 0 && errno == ENOENT;
    tc_check(segs[i].deleted && gone, file, line,
             "%s: segment %s is still linked in /dev/shm (maps says %s, access() says %s); it "
             "must be unlinked once every rank has mapped it",
             what, segs[i].path, segs[i].deleted ? "deleted" : "not deleted",
             gone ? "gone" : "present");
  }
  if (print) fflush(stdout);
}

/* ---------------------------------------------------------------- tuning */

static size_t env_size(const char *name, size_t def)
{
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return def;
  char *end;
  long long x = strtoll(v, &end, 10);
  return (*end == '\0' && x > 0) ? (size_t)x : def;
}

size_t ts_slice_bytes(void) { return env_size("MLCOMM_SHM_SLICE_BYTES", 64 << 10); }
size_t ts_small_bytes(void) { return env_size("MLCOMM_SHM_SMALL_BYTES", 8 << 10); }

/* ---------------------------------------------------------------- results */

static uint64_t to_bits_f(float f)
{
  uint32_t b;
  memcpy(&b, &f, 4);
  return b;
}
static float from_bits_f(uint64_t bits)
{
  uint32_t b = (uint32_t)bits;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static uint64_t to_bits_d(double d)
{
  uint64_t b;
  memcpy(&b, &d, 8);
  return b;
}
static double from_bits_d(uint64_t b)
{
  double d;
  memcpy(&d, &b, 8);
  return d;
}

/* Element as float for the 16-bit types, and back with round to nearest-even. */
static float narrow_to_float(mlcommDataType_t type, uint64_t bits)
{
  return type == mlcommFloat16 ? tc_half_to_float((uint16_t)bits) : tc_bf16_to_float((uint16_t)bits);
}
static uint64_t float_to_narrow(mlcommDataType_t type, float f)
{
  return type == mlcommFloat16 ? tc_float_to_half(f) : tc_float_to_bf16(f);
}

/* acc (op) x in the type's precision, one rounding. */
static uint64_t step(mlcommDataType_t type, mlcommRedOp_t op, uint64_t acc, uint64_t x)
{
  bool prod = op == mlcommProd;
  switch (type) {
  case mlcommFloat32: {
    float a = from_bits_f(acc), b = from_bits_f(x);
    return to_bits_f(prod ? a * b : a + b);
  }
  case mlcommFloat64: {
    double a = from_bits_d(acc), b = from_bits_d(x);
    return to_bits_d(prod ? a * b : a + b);
  }
  default: {
    float a = narrow_to_float(type, acc), b = narrow_to_float(type, x);
    return float_to_narrow(type, prod ? a * b : a + b);
  }
  }
}

static uint64_t divide(mlcommDataType_t type, uint64_t acc, int n)
{
  switch (type) {
  case mlcommFloat32: return to_bits_f(from_bits_f(acc) / (float)n);
  case mlcommFloat64: return to_bits_d(from_bits_d(acc) / (double)n);
  default: return float_to_narrow(type, narrow_to_float(type, acc) / (float)n);
  }
}

static bool check_exact(const char *file, int line, const void *got, mlcommDataType_t type,
                        mlcommRedOp_t op, size_t count, uint64_t seed, size_t first, int nranks,
                        const char *what)
{
  size_t esize = tc_type_size(type);
  uint64_t *acc = malloc((count ? count : 1) * sizeof *acc);
  void *in = malloc((count ? count : 1) * esize);
  if (acc == NULL || in == NULL) {
    fprintf(stderr, "FAIL [rank %d] out of memory\n", tc_rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  for (int k = 0; k < nranks; k++) {
    tc_fill(in, type, op, count, seed, k, first);
    for (size_t i = 0; i < count; i++) {
      uint64_t x = tc_get_bits(type, in, i);
      acc[i] = k == 0 ? x : step(type, op, acc[i], x);
    }
  }
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < count; i++) {
    uint64_t ref = op == mlcommAvg ? divide(type, acc[i], nranks) : acc[i];
    if (tc_get_bits(type, got, i) != ref && bad++ == 0) {
      first_bad = i;
      acc[0] = ref; /* keep it for the message */
    }
  }
  double g = bad ? tc_get_double(type, got, first_bad) : 0;
  double r = 0;
  if (bad) {
    uint64_t refbits = acc[0];
    r = type == mlcommFloat32   ? from_bits_f(refbits)
        : type == mlcommFloat64 ? from_bits_d(refbits)
                                : narrow_to_float(type, refbits);
  }
  free(acc);
  free(in);
  return tc_check(bad == 0, file, line,
                  "%s: %zu of %zu elements differ from the rank-order (0..%d) %s %s computed "
                  "here; first at %zu: got %.17g, expected %.17g (bit for bit)",
                  what, bad, count, nranks - 1, tc_type_name(type), tc_op_name(op), first_bad, g,
                  r);
}

bool ts_check_result_at(const char *file, int line, const void *got, mlcommDataType_t type,
                        mlcommRedOp_t op, size_t count, uint64_t seed, size_t first,
                        int nranks, bool exact, const char *what)
{
  if (exact && tc_type_is_float(type) &&
      (op == mlcommSum || op == mlcommProd || op == mlcommAvg))
    return check_exact(file, line, got, type, op, count, seed, first, nranks, what);
  return tc_check_reduced_at(file, line, got, type, op, count, seed, first, nranks, what);
}

/* Rank 0's copy of bytes: buf itself on rank 0, a malloc'ed copy elsewhere. */
static unsigned char *ts_identical_ref(const void *buf, size_t bytes, MPI_Comm mpiComm)
{
  int rank;
  MPI_Comm_rank(mpiComm, &rank);
  unsigned char *theirs = rank == 0 ? (unsigned char *)buf : malloc(bytes ? bytes : 1);
  if (theirs == NULL) {
    fprintf(stderr, "FAIL [rank %d] out of memory\n", tc_rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const size_t chunk = (size_t)1 << 30;
  for (size_t off = 0; off < bytes; off += chunk) {
    size_t n = bytes - off < chunk ? bytes - off : chunk;
    MPI_Bcast(theirs + off, (int)n, MPI_BYTE, 0, mpiComm);
  }
  return theirs;
}

bool ts_identical_at(const char *file, int line, const void *buf, size_t bytes,
                     MPI_Comm mpiComm, const char *what)
{
  int rank;
  MPI_Comm_rank(mpiComm, &rank);
  unsigned char *theirs = ts_identical_ref(buf, bytes, mpiComm);
  bool same = true;
  size_t at = 0;
  if (rank != 0) {
    same = memcmp(buf, theirs, bytes) == 0;
    if (!same)
      while (((const unsigned char *)buf)[at] == theirs[at]) at++;
    free(theirs);
  }
  return tc_check(same, file, line,
                  "%s: result differs from rank 0's, first at byte %zu of %zu (results must be "
                  "bitwise identical on every rank)",
                  what, at, bytes);
}

struct log_entry {
  size_t off, bytes;
  char what[200];
};
static unsigned char *log_data;
static size_t log_used, log_cap;
static struct log_entry *log_entries;
static size_t log_n, log_ncap;

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : 64;
  while (c < need) c *= 2;
  p = realloc(p, c * elem);
  if (p == NULL) {
    fprintf(stderr, "FAIL [rank %d] out of memory for the results log\n", tc_rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  *cap = c;
  return p;
}

void ts_log_add(const void *buf, size_t bytes, const char *what)
{
  log_data = grow(log_data, &log_cap, log_used + bytes, 1);
  log_entries = grow(log_entries, &log_ncap, log_n + 1, sizeof *log_entries);
  struct log_entry *e = &log_entries[log_n++];
  e->off = log_used;
  e->bytes = bytes;
  snprintf(e->what, sizeof e->what, "%s", what);
  if (bytes) memcpy(log_data + log_used, buf, bytes);
  log_used += bytes;
}

void ts_log_check_at(const char *file, int line, MPI_Comm mpiComm, const char *section)
{
  unsigned long long sizes[2] = {log_used, log_n}, lo[2], hi[2];
  MPI_Allreduce(sizes, lo, 2, MPI_UNSIGNED_LONG_LONG, MPI_MIN, mpiComm);
  MPI_Allreduce(sizes, hi, 2, MPI_UNSIGNED_LONG_LONG, MPI_MAX, mpiComm);
  if (!tc_check(lo[0] == hi[0] && lo[1] == hi[1], file, line,
                "%s: ranks logged different results (test bug)", section))
    goto out;
  size_t differing = 0;
  if (log_used > 0) {
    unsigned char *ref = ts_identical_ref(log_data, log_used, mpiComm);
    for (size_t i = 0; i < log_n; i++) {
      const struct log_entry *e = &log_entries[i];
      if (memcmp(log_data + e->off, ref + e->off, e->bytes) == 0) continue;
      size_t at = 0;
      while (log_data[e->off + at] == ref[e->off + at]) at++;
      if (differing++ < 5)
        tc_check(false, file, line,
                 "%s: %s: result differs from rank 0's, first at byte %zu of %zu (results "
                 "must be bitwise identical on every rank)",
                 section, e->what, at, e->bytes);
    }
    if (ref != log_data) free(ref);
  }
  tc_check(differing == 0, file, line, "%s: %zu of %zu results differ from rank 0's", section,
           differing, log_n);
out:
  log_used = 0;
  log_n = 0;
}

/* ---------------------------------------------------------------- last-error text */

bool ts_names_rank(const char *text, int rank)
{
  if (text == NULL) return false;
  for (const char *p = strstr(text, "rank "); p; p = strstr(p + 1, "rank ")) {
    char *end;
    long r = strtol(p + 5, &end, 10);
    if (end != p + 5 && r == rank) return true;
  }
  return false;
}

long long ts_seq_of(const char *text)
{
  const char *p = text ? strstr(text, "seq ") : NULL;
  if (p == NULL) return -1;
  char *end;
  long long v = strtoll(p + 4, &end, 10);
  return end == p + 4 ? -1 : v;
}

static const char *parse_ranks(const char *p, uint64_t *mask, bool stop_at_paren)
{
  while (*p && *p != ';' && *p != '.') {
    if (*p >= '0' && *p <= '9') {
      char *end;
      long r = strtol(p, &end, 10);
      if (r >= 0 && r < 64) *mask |= 1ull << r;
      p = end;
    } else if (*p == '(') {
      if (stop_at_paren) break;
      int depth = 0;
      do {
        if (*p == '(') depth++;
        if (*p == ')') depth--;
        p++;
      } while (*p && depth > 0);
    } else if (*p == ' ' || *p == ',') {
      p++;
    } else {
      break; /* a word: the list has ended */
    }
  }
  return p;
}

bool ts_arrival_lists(const char *text, uint64_t *missing, uint64_t *arrived)
{
  *missing = *arrived = 0;
  const char *p = text ? strstr(text, "not arrived:") : NULL;
  if (p == NULL) return false;
  p = parse_ranks(p + strlen("not arrived:"), missing, false);
  const char *a = strstr(p, "; arrived:");
  if (a) parse_ranks(a + strlen("; arrived:"), arrived, true);
  return true;
}

double ts_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
