/*
 * report.c - what rank 0 prints and writes: the table on stdout, in nccl-tests' layout
 * (sizes, algbw/busbw, "#wrong", the two footer lines) so that numbers can be read side by
 * side with theirs, and the same rows as JSON for scripts.
 */
#include "harness_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *op_name(const struct hb_report *r, mlcommRedOp_t op) {
  return r->coll->uses_op ? mlcommRedOpName(op) : "none";
}

/* The run's type and op: the one asked for, or "all" with -d all / -o all. */
static const char *run_type(const struct hb_report *r) {
  return r->args->ntypes > 1 ? "all" : mlcommTypeName(r->args->types[0]);
}
static const char *run_op(const struct hb_report *r) {
  return r->coll->uses_op && r->args->nops > 1 ? "all" : op_name(r, r->args->ops[0]);
}

static const char *average_name(int average) {
  static const char *const names[] = {"rank0", "mean", "min", "max"};
  return average >= 0 && average <= 3 ? names[average] : "?";
}

/* busbw as a fraction of the bound's busbw; NaN where there is no bound, or where the
 * bound is 0 (one rank: the busbw factors are 0) */
static double bound_frac(const struct hb_report *r, double busbw) {
  if (!r->bound || !(r->bound->busbw_max > 0.0)) return NAN;
  return busbw / r->bound->busbw_max;
}

/* --bound: how the memory bandwidth was measured, and what it allows this collective */
static void print_bound(const struct hb_report *r) {
  const struct hb_bound *b = r->bound;
  printf("# memory bandwidth %.2f GB/s: %d rank%s of the node copying %zu MiB each at once, "
         "read+write bytes, best of %d\n",
         b->mem_bw, b->node_ranks, b->node_ranks == 1 ? "" : "s", b->copy_bytes >> 20, b->reps);
  printf("# bound: a call moves >= %.2f x size bytes through memory: algbw <= %.2f GB/s, "
         "busbw <= %.2f GB/s\n",
         b->traffic, b->algbw_max, b->busbw_max);
  if (b->nodes > 1)
    printf("# bound: the models assume one node, but this job spans %d nodes: the bound "
           "column is not meaningful\n",
           b->nodes);
}

void hb_report_header(const struct hb_report *r) {
  const struct hb_args *a = r->args;
  printf("# mlcomm %s bench: %s\n", r->version, r->coll->bench);
  /* the settings that change what the time column means are named when not the default */
  char extra[160] = "";
  size_t len = 0;
  if (a->agg > 1)
    len += (size_t)snprintf(extra + len, sizeof extra - len, ", agg_iters %d", a->agg);
  if (a->average != HB_AVG_MEAN)
    len += (size_t)snprintf(extra + len, sizeof extra - len, ", average %s",
                            average_name(a->average));
  if (!a->blocking) len += (size_t)snprintf(extra + len, sizeof extra - len, ", blocking 0");
  if (a->cputime) len += (size_t)snprintf(extra + len, sizeof extra - len, ", cputime 1");
  if (a->in_place) len += (size_t)snprintf(extra + len, sizeof extra - len, ", in-place 1");
  if (a->cycles > 1) snprintf(extra + len, sizeof extra - len, ", cycles %d", a->cycles);
  printf("# nranks %d, transport %s, memory %s, type %s, op %s, iters %d, warmup %d, "
         "check %d%s\n",
         r->nranks, r->transport, hb_memory_name(a->memory), run_type(r), run_op(r), a->iters,
         a->warmup, a->check, extra);
  if (r->bound) print_bound(r);
  fflush(stdout);
}

void hb_report_section(const struct hb_report *r, mlcommDataType_t type, mlcommRedOp_t op,
                       int root, int cycle) {
  const struct hb_args *a = r->args;
  if (r->sections > 1) {
    printf("#\n# type %s, op %s, root %d", mlcommTypeName(type), op_name(r, op),
           r->coll->uses_root ? root : -1);
    if (a->cycles > 1) printf(", cycle %d", cycle + 1);
    printf("\n");
  }
  /* two header lines as in nccl-tests: names, then units */
  char line[256];
  int len = snprintf(line, sizeof line, "#%11s %12s %9s %6s %5s %10s %8s %8s %7s", "size",
                     "count", "type", "redop", "root", "time", "algbw", "busbw", "#wrong");
  if (a->vs_mpi)
    len += snprintf(line + len, sizeof line - (size_t)len, " %10s %10s %7s", "mpi_us",
                    "mpi_busbw", "ratio");
  if (r->bound)
    snprintf(line + len, sizeof line - (size_t)len, a->vs_mpi ? " %6s %9s" : " %6s", "bound",
             "mpi_bound");
  printf("%s\n", line);
  len = snprintf(line, sizeof line, "#%11s %12s %9s %6s %5s %10s %8s %8s %7s", "(B)",
                 "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "");
  if (a->vs_mpi)
    len += snprintf(line + len, sizeof line - (size_t)len, " %10s %10s %7s", "(us)", "(GB/s)",
                    "");
  if (r->bound)
    snprintf(line + len, sizeof line - (size_t)len, a->vs_mpi ? " %6s %9s" : " %6s", "(frac)",
             "(frac)");
  len = (int)strlen(line);
  while (len > 0 && line[len - 1] == ' ') line[--len] = '\0'; /* no trailing blanks */
  printf("%s\n", line);
  fflush(stdout);
}

void hb_report_row(struct hb_report *r, const struct hb_row *row) {
  const struct hb_args *a = r->args;
  if (r->nrows == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 32;
    struct hb_row *grown = realloc(r->rows, r->cap * sizeof *r->rows);
    if (!grown) {
      fprintf(stderr, "%s: out of memory for the result table\n", r->coll->bench);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    r->rows = grown;
  }
  struct hb_row *kept = &r->rows[r->nrows++];
  *kept = *row;
  kept->bound_frac = bound_frac(r, row->busbw);
  kept->mpi_bound_frac = row->have_mpi ? bound_frac(r, row->mpi_busbw) : NAN;
  char wrong_text[24] = "N/A";
  if (a->check) snprintf(wrong_text, sizeof wrong_text, "%llu", (unsigned long long)row->wrong);
  printf("%12zu %12zu %9s %6s %5d %10.2f %8.2f %8.2f %7s", row->size, row->count,
         mlcommTypeName(row->type), op_name(r, row->op), row->root, row->us, row->algbw,
         row->busbw, wrong_text);
  if (a->vs_mpi) {
    if (row->have_mpi)
      printf(" %10.2f %10.2f %7.2f", row->mpi_us, row->mpi_busbw, row->ratio);
    else
      printf(" %10s %10s %7s", "-", "-", "-");
  }
  if (r->bound) {
    if (isfinite(kept->bound_frac))
      printf(" %6.2f", kept->bound_frac);
    else
      printf(" %6s", "-");
    if (a->vs_mpi) {
      if (isfinite(kept->mpi_bound_frac))
        printf(" %9.2f", kept->mpi_bound_frac);
      else
        printf(" %9s", "-");
    }
  }
  printf("\n");
  fflush(stdout);
}

void hb_report_footer(struct hb_report *r, uint64_t wrong_total) {
  double sum_ratio = 0.0;
  size_t n_ratio = 0;
  r->avg_busbw = 0.0;
  r->avg_ratio = NAN;
  for (size_t k = 0; k < r->nrows; k++) {
    r->avg_busbw += r->rows[k].busbw;
    if (r->rows[k].have_mpi && r->rows[k].size >= ((size_t)1 << 20)) {
      sum_ratio += r->rows[k].ratio;
      n_ratio++;
    }
  }
  if (r->nrows) r->avg_busbw /= (double)r->nrows;
  if (n_ratio) r->avg_ratio = sum_ratio / (double)n_ratio;

  printf("# Out of bounds values : %llu %s\n", (unsigned long long)wrong_total,
         wrong_total ? "FAILED" : "OK");
  printf("# Avg bus bandwidth    : %.4f\n", r->avg_busbw);
  if (r->args->vs_mpi) {
    if (n_ratio)
      printf("# Avg ratio (>=1MiB)   : %.4f\n", r->avg_ratio);
    else
      printf("# Avg ratio (>=1MiB)   : -\n");
  }
  fflush(stdout);
}

/* JSON has no NaN or infinity: a number that is not finite is written as null. */
static void json_number(FILE *f, const char *key, double v, const char *fmt, int last) {
  fprintf(f, "\"%s\": ", key);
  if (isfinite(v))
    fprintf(f, fmt, v);
  else
    fprintf(f, "null");
  fprintf(f, last ? "" : ", ");
}

int hb_report_json(FILE *f, const struct hb_report *r, uint64_t wrong_total,
                   const char *status) {
  const struct hb_collective *coll = r->coll;
  const struct hb_args *a = r->args;
  fprintf(f, "{\n  \"bench\": \"%s\",\n  \"version\": \"%s\",\n  \"nranks\": %d,\n", coll->bench,
          r->version, r->nranks);
  fprintf(f, "  \"transport\": \"%s\",\n  \"memory\": \"%s\",\n", r->transport,
          hb_memory_name(a->memory));
  fprintf(f, "  \"type\": \"%s\",\n  \"op\": \"%s\",\n", run_type(r), run_op(r));
  if (coll->uses_root && a->root == HB_ROOT_ALL)
    fprintf(f, "  \"root\": \"all\",\n");
  else
    fprintf(f, "  \"root\": %d,\n", coll->uses_root ? a->root : -1);
  fprintf(f, "  \"iters\": %d,\n  \"warmup\": %d,\n  \"check\": %d,\n  \"agg_iters\": %d,\n",
          a->iters, a->warmup, a->check, a->agg);
  fprintf(f, "  \"average\": \"%s\",\n  \"blocking\": %d,\n  \"report_cputime\": %d,\n",
          average_name(a->average), a->blocking, a->cputime);
  fprintf(f, "  \"run_cycles\": %d,\n  \"timeout_ms\": %d,\n", a->cycles, r->timeout_ms);
  fprintf(f, "  \"async\": %d,\n  \"in_place\": %s,\n  \"vs_mpi\": %d,\n", !a->blocking,
          a->in_place ? "true" : "false", a->vs_mpi);
  /* --bound: the measurement and this collective's bound (null without --bound) */
  const struct hb_bound *b = r->bound;
  fprintf(f, "  ");
  json_number(f, "mem_bw", b ? b->mem_bw : NAN, "%.4f", 1);
  fprintf(f, ",\n  ");
  json_number(f, "bound_traffic", b ? b->traffic : NAN, "%.4f", 1);
  fprintf(f, ",\n  ");
  json_number(f, "bound_algbw", b ? b->algbw_max : NAN, "%.6f", 1);
  fprintf(f, ",\n  ");
  json_number(f, "bound_busbw", b ? b->busbw_max : NAN, "%.6f", 1);
  fprintf(f, ",\n  \"rows\": [");
  for (size_t k = 0; k < r->nrows; k++) {
    const struct hb_row *row = &r->rows[k];
    fprintf(f, "%s\n    {\"size\": %zu, \"count\": %zu, \"type\": \"%s\", \"redop\": \"%s\", "
               "\"root\": %d, ",
            k ? "," : "", row->size, row->count, mlcommTypeName(row->type), op_name(r, row->op),
            row->root);
    json_number(f, "time_us", row->us, "%.3f", 0);
    json_number(f, "algbw", row->algbw, "%.6f", 0);
    json_number(f, "busbw", row->busbw, "%.6f", 0);
    if (a->check)
      fprintf(f, "\"wrong\": %llu", (unsigned long long)row->wrong);
    else
      fprintf(f, "\"wrong\": null");
    if (a->vs_mpi) {
      fprintf(f, ", ");
      json_number(f, "mpi_us", row->have_mpi ? row->mpi_us : NAN, "%.3f", 0);
      json_number(f, "mpi_busbw", row->have_mpi ? row->mpi_busbw : NAN, "%.6f", 0);
      json_number(f, "ratio", row->have_mpi ? row->ratio : NAN, "%.4f", 1);
    }
    if (b) {
      fprintf(f, ", ");
      json_number(f, "bound_frac", row->bound_frac, "%.4f", !a->vs_mpi);
      if (a->vs_mpi) json_number(f, "mpi_bound_frac", row->mpi_bound_frac, "%.4f", 1);
    }
    if (row->rank_us) {
      fprintf(f, ", \"rank_us\": [");
      for (int k = 0; k < r->nranks; k++)
        fprintf(f, isfinite(row->rank_us[k]) ? "%s%.3f" : "%snull", k ? ", " : "",
                row->rank_us[k]);
      fprintf(f, "]");
    }
    fprintf(f, "}");
  }
  fprintf(f, "%s],\n  \"wrong_total\": %llu,\n  ", r->nrows ? "\n  " : "",
          (unsigned long long)wrong_total);
  json_number(f, "avg_busbw", r->avg_busbw, "%.6f", 1);
  fprintf(f, ",\n  ");
  json_number(f, "avg_ratio_1mib", a->vs_mpi ? r->avg_ratio : NAN, "%.4f", 1);
  fprintf(f, ",\n  \"status\": \"%s\"\n}\n", status);
  return ferror(f) ? -1 : 0;
}

void hb_report_free(struct hb_report *r) {
  for (size_t k = 0; k < r->nrows; k++) free(r->rows[k].rank_us);
  free(r->rows);
  r->rows = NULL;
  r->nrows = r->cap = 0;
}
