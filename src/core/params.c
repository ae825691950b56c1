/*
 * The MLCOMM_* variables declared with MLCOMM_PARAM (params.h): parsing, reading them
 * all for a new communicator, and spotting the ones nobody declared.
 */
#include "core/params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/transport.h"
#include "core/internal.h"

extern char **environ;

/* The linker's bounds of the section every MLCOMM_PARAM adds its pointer to. */
extern const struct mlcomm_param *const __start_mlcomm_params[]
    __attribute__((weak, visibility("hidden")));
extern const struct mlcomm_param *const __stop_mlcomm_params[]
    __attribute__((weak, visibility("hidden")));

/* Read by programs built on the library, not by it: known, so never called unknown. */
static const char *const consumer_vars[] = {
    "MLCOMM_LIBRARY", /* the Python bindings' library path */
};

static size_t nparams(void) {
  if (__start_mlcomm_params == NULL) return 0;
  return (size_t)(__stop_mlcomm_params - __start_mlcomm_params);
}

static bool parse_integer(const char *text, int64_t lo, int64_t hi, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  while (end && (*end == ' ' || *end == '\t')) end++;
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool mlcomm_param_parse(const struct mlcomm_param *p, const char *text, int64_t *out) {
  for (const struct mlcomm_param_word *w = p->words; w && w->word; w++)
    if (!strcasecmp(text, w->word)) {
      *out = w->value;
      return true;
    }
  return p->lo <= p->hi && parse_integer(text, p->lo, p->hi, out);
}

mlcommResult_t mlcomm_param_env(const struct mlcomm_param *p, int64_t *out) {
  const char *text = getenv(p->env);
  *out = p->def;
  if (text == NULL || *text == '\0') return mlcommSuccess;
  if (mlcomm_param_parse(p, text, out)) return mlcommSuccess;
  char accepts[256] = "";
  for (const struct mlcomm_param_word *w = p->words; w && w->word; w++)
    mlcomm_append(accepts, sizeof accepts, "%s%s", w == p->words ? "one of " : ", ", w->word);
  if (p->lo <= p->hi)
    mlcomm_append(accepts, sizeof accepts, "%san integer in [%lld, %lld]",
                  p->words ? " or " : "", (long long)p->lo, (long long)p->hi);
  return mlcomm_error(NULL, mlcommInvalidArgument, "environment variable %s='%s' is not %s",
                      p->env, text, accepts);
}

mlcommResult_t mlcomm_params_read(int64_t **values) {
  size_t n = nparams();
  *values = calloc(n ? n : 1, sizeof **values);
  if (*values == NULL) return mlcomm_error(NULL, mlcommSystemError, "out of memory for settings");
  for (size_t i = 0; i < n; i++) {
    mlcommResult_t res = mlcomm_param_env(__start_mlcomm_params[i], &(*values)[i]);
    if (res != mlcommSuccess) {
      free(*values);
      *values = NULL;
      return res;
    }
  }
  return mlcommSuccess;
}

int64_t *mlcomm_params_dup(const int64_t *src) {
  size_t bytes = (nparams() ? nparams() : 1) * sizeof *src;
  int64_t *dst = malloc(bytes);
  if (dst) memcpy(dst, src, bytes);
  return dst;
}

int64_t mlcomm_param_at(const int64_t *values, const struct mlcomm_param *p) {
  size_t n = nparams();
  for (size_t i = 0; i < n; i++)
    if (__start_mlcomm_params[i] == p) return values[i];
  return p->def; /* not in the section: cannot happen for an MLCOMM_PARAM */
}

int64_t mlcomm_param(const struct mlcomm_comm *comm, const struct mlcomm_param *p) {
  return mlcomm_param_at(comm->params, p);
}

/* "MLCOMM_SHM_TUNE" for the shm transport: one tune string per transport in the table. */
static bool is_tune_var(const char *name) {
  for (int i = 0; i < mlcomm_ntransports; i++) {
    char var[64];
    mlcomm_transport_tune_var(mlcomm_transports[i], var, sizeof var);
    if (!strcmp(name, var)) return true;
  }
  return false;
}

bool mlcomm_param_known(const char *name) {
  size_t n = nparams();
  for (size_t i = 0; i < n; i++)
    if (!strcmp(name, __start_mlcomm_params[i]->env)) return true;
  for (size_t i = 0; i < sizeof consumer_vars / sizeof consumer_vars[0]; i++)
    if (!strcmp(name, consumer_vars[i])) return true;
  return is_tune_var(name);
}

/* Levenshtein distance, capped: only "close enough to be a typo" matters. */
static int distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int row[64];
  for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (row[j] + 1 < best) best = row[j] + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

static const char *nearest(const char *name) {
  const char *best = NULL;
  int best_d = 4; /* more edits than this is another word, not a typo */
  size_t n = nparams();
  for (size_t i = 0; i < n; i++) {
    int d = distance(name, __start_mlcomm_params[i]->env);
    if (d < best_d) best_d = d, best = __start_mlcomm_params[i]->env;
  }
  return best;
}

void mlcomm_params_warn_unknown(void) {
  static bool done;
  if (done) return;
  done = true;
  for (char **e = environ; e && *e; e++) {
    if (strncmp(*e, "MLCOMM_", 7) != 0) continue;
    const char *eq = strchr(*e, '=');
    char name[128];
    size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
    if (len >= sizeof name) continue;
    memcpy(name, *e, len);
    name[len] = '\0';
    if (mlcomm_param_known(name)) continue;
    const char *near = nearest(name);
    MLCOMM_INFO("environment variable %s is not one mlcomm reads: ignored%s%s%s "
                "(docs/configuration.md lists them)",
                name, near ? "; did you mean " : "", near ? near : "", near ? "?" : "");
  }
}
