#!/bin/bash
# shm_vs_mpi.sh - the shared-memory transport's sweep: mlcomm on --transport shm against plain MPI
# (--vs-mpi, on the same buffers), with host (malloc) and alloc (mlcommMemAlloc, zero-copy
# on shm) memory, against the node's memory-bandwidth bound (--bound). Writes every
# run's --json file, its table (.txt) and one PNG per benchmark into OUTDIR.
#
#   2 ranks, float sum allreduce        8 B .. 256 MiB   host, alloc
#   2 ranks allgather, broadcast,
#           reduce_scatter              1 MiB .. 256 MiB host, alloc
#   4 ranks (oversubscribed) allreduce  8 B .. 256 MiB   host, alloc
#
# Every sweep runs in two parts, so that the large sizes cost few iterations: sizes up to
# 16 MiB with the bench defaults (-n 20 -w 5), then 32 MiB .. 256 MiB with -n 5 -w 2
# (files NAME.json and NAME_large.json; plot_busbw.py merges them into one line).
# About 3-4 minutes on 2 cores.
set -u

usage() {
  cat <<EOF
usage: bench/shm_vs_mpi.sh [-t TRANSPORT] [-B BUILDDIR] OUTDIR

Runs the shm-vs-MPI sweep and writes, into OUTDIR (created if missing):
  <bench>_n<ranks>_<memory>.json / _large.json   the bench --json files
  <bench>_n<ranks>_<memory>.txt                  the tables (both parts)
  <bench>_n<ranks>.png                           busbw vs size (bench/plot_busbw.py)

  -t TRANSPORT  the mlcomm transport to measure (default shm; auto mpi shm nccl)
  -B BUILDDIR   the meson build dir holding bench/ (default build)
  -h            this text

Environment: MPIRUN (default "mpirun --oversubscribe --allow-run-as-root"),
PYTHON (default /usr/bin/python3, which needs python3-matplotlib).
Exit code 0 when every run passed, 1 when one failed (the others still run; a
plot is made from whatever JSON exists), 2 on bad arguments.
EOF
}

transport=shm
build=build
while getopts "t:B:h" opt; do
  case $opt in
    t) transport=$OPTARG ;;
    B) build=$OPTARG ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ]; then
  echo "shm_vs_mpi.sh: give exactly one OUTDIR (run with -h for details)" >&2
  exit 2
fi
case $transport in
  auto | mpi | shm | nccl) ;;
  *) echo "shm_vs_mpi.sh: -t '$transport' is not a transport; allowed: auto mpi shm nccl" >&2
     exit 2 ;;
esac
out=$1
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench
if [ ! -x "$bin/allreduce_bw" ]; then
  echo "shm_vs_mpi.sh: no $bin/allreduce_bw; build first (meson setup $build && ninja -C $build) or pass -B" >&2
  exit 2
fi
mkdir -p "$out" || exit 2
read -r -a mpirun <<< "${MPIRUN:-mpirun --oversubscribe --allow-run-as-root}"
python=${PYTHON:-/usr/bin/python3}

failed=()
start=$SECONDS

# run NRANKS BENCH MEMORY MINBYTES: both parts of one sweep
run() {
  local np=$1 bench=$2 mem=$3 min=$4
  local name=${bench%_bw}_n${np}_${mem}
  local common=(--transport "$transport" --memory "$mem" --vs-mpi --bound -d float -o sum)
  echo "== $name ($transport, $np ranks, $min .. 256M)"
  : > "$out/$name.txt"
  "${mpirun[@]}" -np "$np" "$bin/$bench" "${common[@]}" -b "$min" -e 16M \
    --json "$out/$name.json" >> "$out/$name.txt" 2>&1 || failed+=("$name")
  "${mpirun[@]}" -np "$np" "$bin/$bench" "${common[@]}" -b 32M -e 256M -n 5 -w 2 \
    --json "$out/${name}_large.json" >> "$out/$name.txt" 2>&1 || failed+=("${name}_large")
  grep -E '^# (memory bandwidth|Out of bounds|Avg)|failed' "$out/$name.txt" | sed 's/^/   /'
}

# plot NRANKS BENCH: one PNG from every JSON of that benchmark and rank count
plot() {
  local np=$1 bench=$2
  local stem=${bench%_bw}_n${np}
  local files=()
  for f in "$out/${stem}"_*.json; do [ -s "$f" ] && files+=("$f"); done
  if [ ${#files[@]} -eq 0 ]; then
    echo "   (no JSON for $stem: no plot)"
    return
  fi
  local what=float
  case $bench in allreduce_bw | reduce_scatter_bw | reduce_bw) what="float sum" ;; esac
  "$python" "$here/plot_busbw.py" --bound -o "$out/$stem.png" \
    --title "$bench, $np ranks, $what: mlcomm $transport vs MPI" "${files[@]}" ||
    failed+=("$stem.png")
}

for mem in host alloc; do run 2 allreduce_bw "$mem" 8; done
plot 2 allreduce_bw
for bench in allgather_bw broadcast_bw reduce_scatter_bw; do
  for mem in host alloc; do run 2 "$bench" "$mem" 1M; done
  plot 2 "$bench"
done
for mem in host alloc; do run 4 allreduce_bw "$mem" 8; done
plot 4 allreduce_bw

echo "== done in $((SECONDS - start)) s; results in $out"
if [ ${#failed[@]} -gt 0 ]; then
  echo "shm_vs_mpi.sh: failed: ${failed[*]} (see the .txt files in $out)" >&2
  exit 1
fi
exit 0
