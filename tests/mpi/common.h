/*
 * A tiny harness shared by the multi-rank tests.
 *
 * Every test program is launched under mpirun, takes `-t auto|mpi|shm|nccl` to pick the
 * transport (so the same binaries can be rerun for each transport), records failures
 * with file:line and rank instead of stopping at the first one, and ends with one line
 * on rank 0, `N passed, N failed`. The process exits 1 on any failure on any rank, 77
 * (Meson's "skipped") when the test cannot run here, 0 otherwise.
 *
 * Data is generated from a stateless hash of (seed, rank, index), so every rank can
 * recompute any other rank's input and check results against a reference it computed
 * alone, without trusting any communication.
 */
#ifndef MLCOMM_TESTS_MPI_COMMON_H
#define MLCOMM_TESTS_MPI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "mlcomm/mlcomm.h"

/* ---------------------------------------------------------------- setup and results */

extern int tc_rank;               /* rank in MPI_COMM_WORLD (== rank in tc_comm) */
extern int tc_nranks;             /* size of MPI_COMM_WORLD */
extern mlcommComm_t tc_comm;      /* created from MPI_COMM_WORLD by tc_init */
extern int tc_transport;          /* mlcommTransport_t chosen by -t */

/* MPI_Init, parse -t, create tc_comm. Exits 77 (after MPI_Finalize) when the requested
 * transport is not in this build, 2 on a bad command line. */
void tc_init(int *argc, char ***argv);

/* A config with the -t transport and everything else left to the environment. */
void tc_config(mlcommConfig_t *config);

/* Destroys tc_comm, sums the counts over all ranks, prints `N passed, N failed` on
 * rank 0, finalizes MPI. Returns the exit code for main. */
int tc_finish(void);

/* The checks recorded so far on this rank alone (no communication): for a process that
 * must report and leave without MPI, e.g. after a peer was killed. */
long long tc_passed_here(void);
long long tc_failed_here(void);

/* Prints why on rank 0, finalizes MPI and exits 77 on every rank. */
_Noreturn void tc_skip(const char *why);

/* Records one check. Prints a failure as `FAIL file:line [rank r] text`. */
bool tc_check(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* CHECK(cond, fmt, ...): records cond, printing fmt on failure; evaluates to cond. */
#define CHECK(cond, ...) tc_check((cond), __FILE__, __LINE__, __VA_ARGS__)

/* CHECK_RES(call, expected): the call returns the expected mlcommResult_t. On failure
 * the message shows the code and the library's last-error sentence. */
#define CHECK_RES(call, expected) tc_check_res((call), (expected), #call, __FILE__, __LINE__)
#define CHECK_OK(call) CHECK_RES(call, mlcommSuccess)
bool tc_check_res(mlcommResult_t got, mlcommResult_t expected, const char *what,
                  const char *file, int line);

/* Prints a progress line on rank 0 (prefixed with '#', so the closing line stays alone). */
void tc_section(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- types */

size_t tc_type_size(mlcommDataType_t type);
const char *tc_type_name(mlcommDataType_t type);
const char *tc_op_name(mlcommRedOp_t op);
bool tc_type_is_float(mlcommDataType_t type);
bool tc_type_is_signed(mlcommDataType_t type);
/* The machine epsilon used in float bounds (2^-10 for float16, 2^-7 for bfloat16). */
double tc_type_eps(mlcommDataType_t type);

/* Independent IEEE binary16 / bfloat16 conversions (round to nearest-even). */
float tc_half_to_float(uint16_t h);
uint16_t tc_float_to_half(float f);
float tc_bf16_to_float(uint16_t b);
uint16_t tc_float_to_bf16(float f);

/* Element i of buf as a double (floats) / as raw bits zero-extended (any type). */
double tc_get_double(mlcommDataType_t type, const void *buf, size_t i);
uint64_t tc_get_bits(mlcommDataType_t type, const void *buf, size_t i);

/* ---------------------------------------------------------------- data */

/* A 64-bit mix (splitmix64's finalizer). */
uint64_t tc_mix(uint64_t x);
/* A seed for one case, the same on every rank: mixes the values given. */
uint64_t tc_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d);

/* Fills buf[0..count) with rank's data for op: element i is element first+i of that
 * rank's stream for seed. Integers are full-range random (sum and prod wrap); floats
 * are small values (|x| < 2) or, for prod, magnitudes in [0.5, 2) so products stay
 * normal. The same call on any rank writes the same bytes. */
void tc_fill(void *buf, mlcommDataType_t type, mlcommRedOp_t op, size_t count,
             uint64_t seed, int rank, size_t first);

/* Checks got[0..count) against op over ranks 0..nranks-1 of element first+i of each
 * rank's tc_fill stream, computed here. Integers must match exactly (wrapping sum and
 * prod; avg = wrapped sum / nranks truncated toward zero); max/min exactly; float sum,
 * prod and avg within nranks * eps(type) * (sum of |x| or |ref|), reference in double.
 * Records one check; returns true when every element passed. */
#define tc_check_reduced(...) tc_check_reduced_at(__FILE__, __LINE__, __VA_ARGS__)
bool tc_check_reduced_at(const char *file, int line, const void *got, mlcommDataType_t type,
                         mlcommRedOp_t op, size_t count, uint64_t seed, size_t first, int nranks,
                         const char *what);

/* FNV-1a over bytes. */
uint64_t tc_hash(const void *buf, size_t bytes);
/* True when every rank of mpiComm passed the same value (collective over mpiComm). */
bool tc_same_everywhere(uint64_t value, MPI_Comm mpiComm);

/* ---------------------------------------------------------------- guarded buffers */

/* bytes of memory with guard regions before and after; the body is filled with a
 * known pattern (tc_gpattern). Never NULL, even for 0 bytes. */
void *tc_galloc(size_t bytes);
void tc_gfree(void *p);
/* Re-fills the body with the pattern. */
void tc_gfill_pattern(void *p);
/* Records one check that both guards are intact. */
#define tc_gcheck(p, what) tc_gcheck_at(__FILE__, __LINE__, (p), (what))
bool tc_gcheck_at(const char *file, int line, const void *p, const char *what);
/* True when bytes [from, to) of the body still hold the pattern. */
bool tc_gpattern_intact(const void *p, size_t from, size_t to);
size_t tc_gsize(const void *p);

#endif
