/*
 * Helpers for the tests of the shared-memory transport (test_shm_*.c), on top of
 * common.h and the public API only:
 *
 *  - guarded test buffers that are either plain host memory or mlcommMemAlloc memory
 *    (the transport's zero-copy pool), so every collective can be run with any mix of
 *    the two, per rank and per argument;
 *  - what /proc/self/maps says about the transport's segments: a pointer lies inside a
 *    mapping of /dev/shm/mlcomm-*, and every such mapping is already unlinked;
 *  - the exact reference of a float reduction done in rank order 0..n-1 (the shm
 *    transport's fixed order), to check results bit for bit, and a check that every
 *    rank holds the same bytes (rank 0's copy broadcast over MPI and memcmp'd).
 *
 * The tuning environment variables of the transport are read here only to choose
 * counts that straddle its slices; the tests never depend on a default being exact.
 */
#ifndef MLCOMM_TESTS_MPI_SHM_COMMON_H
#define MLCOMM_TESTS_MPI_SHM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---------------------------------------------------------------- buffers */

enum { TB_MALLOC = 0, TB_POOL = 1 };

/* A buffer with guard bytes before and after its body; the body starts 64-byte aligned
 * and holds a known pattern until written. For TB_POOL the whole thing (guards
 * included) is one mlcommMemAlloc allocation, so the body lies inside the pool. */
typedef struct {
  unsigned char *base; /* what was allocated */
  unsigned char *body; /* what the test passes to mlcomm */
  size_t bytes;        /* size of the body */
  int kind;            /* TB_MALLOC or TB_POOL */
} tbuf_t;

/* Allocates (bytes may be 0: the body then has 64 pattern bytes anyway). A failed
 * mlcommMemAlloc is recorded as a failed check and the buffer falls back to malloc. */
void tb_alloc(tbuf_t *b, mlcommComm_t comm, int kind, size_t bytes);
/* Frees; for TB_POOL checks that mlcommMemFree succeeds. NULL-safe on a zeroed tbuf. */
void tb_free(tbuf_t *b);
/* Records one check that both guards are intact (nothing for a zeroed tbuf). */
#define tb_gcheck(b, what) tb_gcheck_at(__FILE__, __LINE__, (b), (what))
bool tb_gcheck_at(const char *file, int line, const tbuf_t *b, const char *what);
/* True when body bytes [from, to) still hold the pattern. */
bool tb_pattern_intact(const tbuf_t *b, size_t from, size_t to);
const char *tb_kind_name(int kind);

/* ---------------------------------------------------------------- segments */

/* True when p lies inside a mapping of a file /dev/shm/mlcomm-* (deleted or not). */
bool ts_in_segment(const void *p);
/* The number of distinct /dev/shm/mlcomm-* files this process maps. */
int ts_mapped_segments(void);
/* Records checks that every /dev/shm/mlcomm-* file this process maps is already
 * unlinked: /proc/self/maps marks it "(deleted)" and no such name exists in /dev/shm.
 * With want_some, also that at least one is mapped. When print is set, prints one
 * line "SEGMENT <path>" per mapped segment (for a driver to check after the run). */
#define ts_check_unlinked(want_some, print, what) \
  ts_check_unlinked_at(__FILE__, __LINE__, (want_some), (print), (what))
void ts_check_unlinked_at(const char *file, int line, bool want_some, bool print,
                          const char *what);

/* ---------------------------------------------------------------- tuning */

/* The transport's tuning as the environment sets it (the documented defaults when
 * unset): pipeline slice and one-shot threshold in bytes. */
size_t ts_slice_bytes(void);
size_t ts_small_bytes(void);

/* ---------------------------------------------------------------- results */

/* Checks got[0..count) against op over ranks 0..nranks-1 of element first+i of each
 * rank's tc_fill stream. With exact set and a float type with sum, prod or avg, the
 * reference is the reduction applied left to right in rank order in the type's own
 * precision (float16/bfloat16 widened to float and rounded back to nearest-even after
 * every step; avg is that sum divided by nranks the same way) and must match bit for
 * bit. Otherwise it is tc_check_reduced (integers and max/min exact, floats within
 * tolerance). Records one check. */
#define ts_check_result(...) ts_check_result_at(__FILE__, __LINE__, __VA_ARGS__)
bool ts_check_result_at(const char *file, int line, const void *got, mlcommDataType_t type,
                        mlcommRedOp_t op, size_t count, uint64_t seed, size_t first,
                        int nranks, bool exact, const char *what);

/* Collective over mpiComm: rank 0's bytes are broadcast and every rank memcmp's its own
 * copy against them; a rank that differs records a failure naming the first differing
 * byte. bytes must be the same on every rank. */
#define ts_identical(buf, bytes, mpiComm, what) \
  ts_identical_at(__FILE__, __LINE__, (buf), (bytes), (mpiComm), (what))
bool ts_identical_at(const char *file, int line, const void *buf, size_t bytes,
                     MPI_Comm mpiComm, const char *what);

/* The same, batched: ts_log_add copies a result (and its description) into a log;
 * ts_log_check, collective over mpiComm, broadcasts rank 0's log once and memcmp's
 * every entry, recording a failure for each entry that differs, then empties the log.
 * Every rank must add entries of the same sizes in the same order. */
void ts_log_add(const void *buf, size_t bytes, const char *what);
#define ts_log_check(mpiComm, section) ts_log_check_at(__FILE__, __LINE__, (mpiComm), (section))
void ts_log_check_at(const char *file, int line, MPI_Comm mpiComm, const char *section);

/* ---------------------------------------------------------------- last-error text */

/* True when text contains "rank R" with R not followed by another digit. */
bool ts_names_rank(const char *text, int rank);
/* Parses "seq N" from text; -1 when absent. */
long long ts_seq_of(const char *text);
/* Parses the lists of the timeout sentence "ranks that have not arrived: 2 (...), 3
 * (...); arrived: 0 1" into bit masks of ranks (parenthesised remarks are skipped).
 * Returns false when "not arrived:" is absent; *arrived is 0 when "; arrived:" is. */
bool ts_arrival_lists(const char *text, uint64_t *missing, uint64_t *arrived);

/* Monotonic clock in seconds (CLOCK_MONOTONIC: comparable between processes of a node). */
double ts_now(void);

#endif
