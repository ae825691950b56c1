/*
 * models.c - guest model names to host paths through the operator's table (models.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models.h"

#define MODELS_ENV "WASI_NN_GPT2_MODELS"
#define DIR_ENV "WASI_NN_GPT2_MODEL_DIR"

void model_table_free(model_table *t) {
  for (int i = 0; i < t->n; i++) free(t->names[i]), free(t->paths[i]);
  free(t->names), free(t->paths), free(t->dir);
  memset(t, 0, sizeof *t);
}

static char *dup_n(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) memcpy(p, s, n), p[n] = 0;
  return p;
}

/* One "name=path" entry of n bytes. */
static int add_entry(model_table *t, const char *s, size_t n, char *err, size_t errlen) {
  const char *eq = memchr(s, '=', n);
  if (!eq || eq == s || eq + 1 == s + n) {
    snprintf(err, errlen, MODELS_ENV " entry \"%.*s\" is not name=path", (int)n, s);
    return -1;
  }
  char **names = realloc(t->names, (size_t)(t->n + 1) * sizeof *names);
  if (names) t->names = names;
  char **paths = realloc(t->paths, (size_t)(t->n + 1) * sizeof *paths);
  if (paths) t->paths = paths;
  char *name = dup_n(s, (size_t)(eq - s)), *path = dup_n(eq + 1, (size_t)(s + n - eq - 1));
  if (!names || !paths || !name || !path) {
    free(name), free(path);
    snprintf(err, errlen, "out of memory reading " MODELS_ENV);
    return -1;
  }
  t->names[t->n] = name, t->paths[t->n] = path, t->n++;
  return 0;
}

int model_table_init(model_table *t, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  const char *list = getenv(MODELS_ENV), *dir = getenv(DIR_ENV);
  for (const char *s = list; s && *s;) {
    const char *end = strchr(s, ',');
    size_t n = end ? (size_t)(end - s) : strlen(s);
    if (n && add_entry(t, s, n, err, errlen) != 0) {
      model_table_free(t);
      return -1;
    }
    s += n + (end != NULL);
  }
  if (dir && *dir) {
    char real[PATH_MAX];
    if (!realpath(dir, real) || !(t->dir = strdup(real))) {
      snprintf(err, errlen, DIR_ENV "=%s: %s", dir, strerror(errno));
      model_table_free(t);
      return -1;
    }
  }
  return 0;
}

/* A name that stays inside a directory as written: relative, no ".." component. */
static int stays_inside(const char *name) {
  if (name[0] == '/') return 0;
  for (const char *s = name; *s;) {
    size_t n = strcspn(s, "/");
    if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
    s += n + (s[n] == '/');
  }
  return 1;
}

wasi_nn_error model_resolve(const model_table *t, const char *name, const char *what,
                            char *path, size_t cap, char *err, size_t errlen) {
  for (int i = 0; i < t->n; i++)
    if (strcmp(t->names[i], name) == 0) {
      if (snprintf(path, cap, "%s", t->paths[i]) >= (int)cap) break;
      return success;
    }
  if (!t->dir) {
    snprintf(err, errlen, "the guest asked for the %s \"%s\", which the host does not offer: "
             "name it in " MODELS_ENV "=name=path,... or set " DIR_ENV, what, name);
    return model_not_found;
  }
  if (!stays_inside(name)) {
    snprintf(err, errlen, "the guest asked for the %s \"%s\": names are relative to the models "
             "directory (" DIR_ENV "), without \"..\" or a leading \"/\"", what, name);
    return invalid_argument;
  }
  char joined[PATH_MAX + 1];
  if (snprintf(joined, sizeof joined, "%s/%s", t->dir, name) >= (int)sizeof joined) {
    snprintf(err, errlen, "the %s name \"%s\" is too long", what, name);
    return invalid_argument;
  }
  char real[PATH_MAX];
  if (!realpath(joined, real)) {
    snprintf(err, errlen, "no %s \"%s\" in the models directory %s: %s", what, name, t->dir,
             strerror(errno));
    return model_not_found;
  }
  size_t dl = strlen(t->dir);
  if (strncmp(real, t->dir, dl) != 0 || (real[dl] != '/' && strcmp(t->dir, "/") != 0)) {
    snprintf(err, errlen, "the %s \"%s\" resolves to %s, outside the models directory %s",
             what, name, real, t->dir);
    return invalid_argument;
  }
  if (snprintf(path, cap, "%s", real) >= (int)cap) {
    snprintf(err, errlen, "the %s path %s is too long", what, real);
    return invalid_argument;
  }
  return success;
}
