/*
 * usage.c - -h's text. The short flags are nccl-tests'; the names listed for -d, -o and
 * --transport are those the library's lookups (mlcommTypeFromName, ...) accept.
 */
#include "harness_internal.h"

#include <stdio.h>

void hb_usage(FILE *f, const struct hb_collective *coll) {
  fprintf(f, "usage: mpirun -np N %s [flags]\n", coll->bench);
  fprintf(f,
          "Sizes (SIZE: an integer with an optional K, M or G suffix, powers of 1024):\n"
          "  -b, --minbytes SIZE         smallest size (default 8)\n"
          "  -e, --maxbytes SIZE         largest size (default 64M)\n"
          "  -f, --stepfactor N          multiply the size by N between rows (default 2);\n"
          "                              1: add -i instead\n"
          "  -i, --stepbytes SIZE        add SIZE between rows (default 1M; -i alone means\n"
          "                              -f 1; -i with -f above 1 is refused)\n"
          "Operation:\n"
          "  -d, --datatype TYPE|all     int8 uint8 int32 uint32 int64 uint64 half float\n"
          "                              double bfloat16 (also float16 float32 float64 bf16);\n"
          "                              default float; all: one table section per type\n"
          "  -o, --op OP|all             sum prod max min avg (default sum)%s\n"
          "  -r, --root R|all            root rank, 0..nranks-1 (default 0); all (or -1): one\n"
          "                              section per root%s\n",
          coll->uses_op ? "" : "; ignored here", coll->uses_root ? "" : "; ignored here");
  fprintf(f,
          "Performance:\n"
          "  -n, --iters N               timed iterations per size (default 20)\n"
          "  -w, --warmup_iters N        untimed iterations per size (default 5)\n"
          "  -m, --agg_iters N           calls per timed iteration, issued between one\n"
          "                              mlcommGroupStart and mlcommGroupEnd, each on buffers\n"
          "                              of its own (default 1)\n"
          "  -a, --average 0|1|2|3       the row's time from the ranks' times: 0 rank 0's,\n"
          "                              1 the mean (default), 2 the minimum, 3 the maximum\n"
          "  -z, --blocking 0|1          1 (default): the blocking calls; 0: the ...Async\n"
          "                              forms, waited once the iteration's calls are issued\n"
          "      --async                 the same as -z 0\n"
          "  -C, --report_cputime 0|1    1: report the time until the calls were issued, not\n"
          "                              until they completed (the same with -z 1)\n"
          "  -N, --run_cycles N          run every section N times (default 1)\n"
          "  -T, --timeout S             bound every wait by S seconds, 0 for none (default:\n"
          "                              the library's, or MLCOMM_TIMEOUT_MS)\n"
          "Test operation:\n"
          "  -c, --check N               checked calls per size, 0 for none (default 1)\n"
          "  -t, --nthreads 1            threads per rank: mlcomm runs one\n"
          "  -g, --ngpus 1               GPUs per rank: mlcomm drives one\n"
          "  -p, --parallel_init 0|1     accepted: every rank initialises its communicator\n"
          "                              at the same time anyway\n"
          "  -y, --stream_null 1         device work goes to CUDA's default stream\n"
          "  -G 0, -S 0, -R 0, -D 0, -M 0 accepted (nccl-tests' defaults); other values, and\n"
          "                              -x and -V, are refused with the reason\n");
  fprintf(f,
          "mlcomm's own:\n"
          "      --transport T           auto mpi shm nccl hier (default: the library's, or\n"
          "                              MLCOMM_TRANSPORT)\n"
          "      --memory KIND           %s (default host): malloc'ed buffers,\n"
          "                              mlcommMemAlloc's (zero-copy on the shm transport),\n"
          "                              or CUDA device memory (cudaMalloc; checked through\n"
          "                              host copies, outside the timing)\n"
          "      --in-place              run every call in place (sendbuff and recvbuff\n"
          "                              overlap as mlcomm.h defines; MPI_IN_PLACE for\n"
          "                              --vs-mpi)%s\n"
          "      --vs-mpi                also time the plain MPI call on the same buffers\n"
          "  -J, --json, --output_file PATH  rank 0 writes every row to PATH as JSON\n"
          "      --bound                 first measure the node's memory bandwidth (every\n"
          "                              rank copying 256 MiB at once), then print busbw as a\n"
          "                              fraction of the bound it sets for this collective\n"
          "  -h, --help                  this text\n",
          hb_memory_list(), coll->in_place ? "" : " (not available here)");
}
