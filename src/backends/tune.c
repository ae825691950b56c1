/*
 * Tune strings: the scores (and algorithm pins) a transport gives each collective by
 * size, in the spirit of UCC's TUNE variables. A string is rules joined by '#'; a rule
 * is elements joined by ':', in any order, each optional:
 *
 *   allreduce,reduce   the kinds it covers (op short names, or "all"; default all)
 *   0-64k              the sizes [lo, hi) it covers, K/M/G = 2^10/2^20/2^30, hi may be
 *                      "inf" (default 0-inf); size is mlcomm_op_size's, nccl-tests' size
 *   25                 the score (0: never chosen under auto)
 *   @small             the algorithm to run (one of the transport's `algorithms`)
 *
 * e.g. MLCOMM_SHM_TUNE=allreduce:0-4k:@small#4k-inf:@pipeline. For a call, the last
 * rule that covers it and sets a score gives the score, and likewise the algorithm, so
 * the environment's rules (parsed after the built-in ones) win where they overlap.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/transport.h"

#define TUNE_MAX_TEXT 4096

static unsigned carried(const struct mlcomm_transport *t) {
  return t->caps.kinds | t->caps.forced_kinds;
}

static mlcommResult_t bad(const char *source, const char *rule, const char *fmt, const char *what) {
  char why[256];
  snprintf(why, sizeof why, fmt, what);
  return mlcomm_error(NULL, mlcommInvalidArgument, "%s: rule '%s': %s", source, rule, why);
}

/* "64k" -> 65536; false on anything else. */
static bool parse_size(const char *s, size_t len, size_t *out) {
  if (len == 3 && !strncmp(s, "inf", 3)) {
    *out = SIZE_MAX;
    return true;
  }
  size_t i = 0;
  unsigned long long v = 0;
  for (; i < len && isdigit((unsigned char)s[i]); i++) {
    if (v > (ULLONG_MAX - 9) / 10) return false;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (i == 0) return false;
  unsigned long long mul = 1;
  if (i < len) {
    switch (s[i]) {
    case 'k': case 'K': mul = 1ull << 10; break;
    case 'm': case 'M': mul = 1ull << 20; break;
    case 'g': case 'G': mul = 1ull << 30; break;
    default: return false;
    }
    if (++i != len) return false;
  }
  if (v > SIZE_MAX / mul) return false;
  *out = (size_t)(v * mul);
  return true;
}

static bool all_digits(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return len > 0;
}

static mlcommResult_t parse_kinds(const struct mlcomm_transport *t, const char *s, size_t len,
                                  const char *source, const char *rule, unsigned *kinds) {
  *kinds = 0;
  while (len > 0) {
    const char *comma = memchr(s, ',', len);
    size_t n = comma ? (size_t)(comma - s) : len;
    int k = mlcomm_op_kind_from_short(s, n);
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(n < 31 ? n : 31), s);
    if (n == 3 && !strncmp(s, "all", 3)) *kinds |= carried(t);
    else if (k < 0)
      return bad(source, rule,
                 "'%s' is not an op kind (allreduce broadcast reduce allgather reducescatter "
                 "barrier send recv, or all), a size range such as 0-64k, a score or @algorithm",
                 name);
    else if (!(carried(t) & MLCOMM_KIND_BIT(k)))
      return bad(source, rule, "this transport does not carry %s", name);
    else *kinds |= MLCOMM_KIND_BIT(k);
    if (!comma) break;
    len -= n + 1;
    s = comma + 1;
  }
  return mlcommSuccess;
}

static mlcommResult_t parse_alg(const struct mlcomm_transport *t, const char *s, size_t len,
                                const char *source, const char *rule, int *alg) {
  for (int a = 0; t->algorithms && t->algorithms[a]; a++)
    if (strlen(t->algorithms[a]) == len && !strncmp(t->algorithms[a], s, len)) {
      *alg = a;
      return mlcommSuccess;
    }
  char list[200] = "";
  for (int a = 0; t->algorithms && t->algorithms[a]; a++)
    mlcomm_append(list, sizeof list, "%s@%s", a ? " " : "", t->algorithms[a]);
  return bad(source, rule, "unknown algorithm; this transport has: %s",
             list[0] ? list : "none to choose");
}

static mlcommResult_t parse_rule(const struct mlcomm_transport *t, const char *rule,
                                 const char *source, struct mlcomm_tune_rule *out) {
  *out = (struct mlcomm_tune_rule){.kinds = carried(t), .lo = 0, .hi = SIZE_MAX,
                                   .score = -1, .alg = -1};
  bool seen_kinds = false, seen_range = false;
  const char *s = rule;
  for (;;) {
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    const char *dash = memchr(s, '-', len);
    if (len == 0) return bad(source, rule, "%s", "an element is empty (two ':' in a row?)");
    if (s[0] == '@') {
      if (out->alg >= 0) return bad(source, rule, "%s", "names two algorithms");
      MLCOMM_CHECK(parse_alg(t, s + 1, len - 1, source, rule, &out->alg));
    } else if (dash) {
      if (seen_range) return bad(source, rule, "%s", "has two size ranges");
      seen_range = true;
      if (!parse_size(s, (size_t)(dash - s), &out->lo) ||
          !parse_size(dash + 1, len - (size_t)(dash - s) - 1, &out->hi) || out->lo == SIZE_MAX)
        return bad(source, rule, "%s",
                   "a size range is LO-HI with sizes like 0, 512, 64k, 4M, 1G (HI may be inf)");
      if (out->lo >= out->hi) return bad(source, rule, "%s", "the range's LO is not below its HI");
    } else if (all_digits(s, len)) {
      if (out->score >= 0) return bad(source, rule, "%s", "has two scores");
      errno = 0;
      long v = strtol(s, NULL, 10);
      if (errno != 0 || v > 1000000) return bad(source, rule, "%s", "a score is 0..1000000");
      out->score = (int)v;
    } else {
      if (seen_kinds) return bad(source, rule, "%s", "has two lists of op kinds");
      seen_kinds = true;
      MLCOMM_CHECK(parse_kinds(t, s, len, source, rule, &out->kinds));
    }
    if (!colon) break;
    s = colon + 1;
  }
  if (out->score < 0 && out->alg < 0)
    return bad(source, rule, "%s", "sets neither a score nor an @algorithm");
  return mlcommSuccess;
}

mlcommResult_t mlcomm_tune_parse(const struct mlcomm_transport *t, const char *text,
                                 const char *source, struct mlcomm_tune *out) {
  size_t len = strlen(text);
  char *copy = malloc(len + 1);
  if (copy == NULL) return mlcomm_error(NULL, mlcommSystemError, "%s: out of memory", source);
  memcpy(copy, text, len + 1);
  mlcommResult_t res = mlcommSuccess;
  for (char *save = NULL, *rule = strtok_r(copy, "#", &save); rule && res == mlcommSuccess;
       rule = strtok_r(NULL, "#", &save)) {
    struct mlcomm_tune_rule r;
    res = parse_rule(t, rule, source, &r);
    if (res != mlcommSuccess) break;
    struct mlcomm_tune_rule *more = realloc(out->rules, (size_t)(out->nrules + 1) * sizeof r);
    if (more == NULL) {
      res = mlcomm_error(NULL, mlcommSystemError, "%s: out of memory", source);
      break;
    }
    out->rules = more;
    out->rules[out->nrules++] = r;
  }
  free(copy);
  return res;
}

void mlcomm_tune_lookup(const struct mlcomm_tune *tune, enum mlcomm_op_kind kind, size_t size,
                        int *score, int *alg) {
  *score = 0;
  *alg = -1;
  for (int i = 0; tune && i < tune->nrules; i++) {
    const struct mlcomm_tune_rule *r = &tune->rules[i];
    if (!(r->kinds & MLCOMM_KIND_BIT(kind)) || size < r->lo || size >= r->hi) continue;
    if (r->score >= 0) *score = r->score;
    if (r->alg >= 0) *alg = r->alg;
  }
}

void mlcomm_transport_tune_var(const struct mlcomm_transport *t, char *buf, size_t len) {
  size_t used = (size_t)snprintf(buf, len, "MLCOMM_");
  for (const char *c = t->name; *c && used + 1 < len; c++) buf[used++] = (char)toupper((unsigned char)*c);
  buf[used < len ? used : len - 1] = '\0';
  mlcomm_append(buf, len, "_TUNE");
}

/* Rank 0's text, so that a rank with a different environment cannot select another
 * transport than its peers (which would hang both). */
static mlcommResult_t shared_text(struct mlcomm_comm *comm, const char *var, char **out) {
  *out = NULL;
  const char *env = comm->rank == 0 ? getenv(var) : NULL;
  int len = env ? (int)strnlen(env, TUNE_MAX_TEXT + 1) : 0;
  MLCOMM_MPI_CHECK(comm, MPI_Bcast(&len, 1, MPI_INT, 0, comm->coll_comm));
  if (len > TUNE_MAX_TEXT)
    return mlcomm_error(comm, mlcommInvalidArgument,
                        "environment variable %s is longer than %d characters", var,
                        TUNE_MAX_TEXT);
  if (len == 0) return mlcommSuccess;
  char *text = calloc((size_t)len + 1, 1);
  if (text == NULL) return mlcomm_error(comm, mlcommSystemError, "%s: out of memory", var);
  if (env) memcpy(text, env, (size_t)len);
  int rc = MPI_Bcast(text, len, MPI_CHAR, 0, comm->coll_comm);
  if (rc != MPI_SUCCESS) {
    free(text);
    return mlcomm_mpi_error(comm, rc, "MPI_Bcast of a tune string");
  }
  *out = text;
  return mlcommSuccess;
}

mlcommResult_t mlcomm_tune_init(struct mlcomm_comm *comm, const struct mlcomm_transport *t,
                                struct mlcomm_tune *out) {
  *out = (struct mlcomm_tune){NULL, 0};
  char var[64], source[96];
  mlcomm_transport_tune_var(t, var, sizeof var);
  char *env = NULL;
  MLCOMM_CHECK(shared_text(comm, var, &env));
  snprintf(source, sizeof source, "the built-in tune of the %s transport", t->name);
  mlcommResult_t res = mlcomm_tune_parse(t, t->tune ? t->tune : "", source, out);
  snprintf(source, sizeof source, "environment variable %s (rank 0's)", var);
  if (res == mlcommSuccess && env) res = mlcomm_tune_parse(t, env, source, out);
  free(env);
  if (res != mlcommSuccess) {
    mlcomm_tune_fini(out);
    /* The parser's sentence is the thread's; the communicator should carry it too. */
    char why[MLCOMM_ERRMSG_LEN];
    snprintf(why, sizeof why, "%s", mlcommGetLastError(NULL));
    return mlcomm_error(comm, res, "%s", why);
  }
  return mlcommSuccess;
}

void mlcomm_tune_fini(struct mlcomm_tune *tune) {
  free(tune->rules);
  tune->rules = NULL;
  tune->nrules = 0;
}
