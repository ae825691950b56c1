#!/bin/bash
# peers.sh - mlcomm beside the other collective libraries a user could pick, on the same
# sizes, ranks and machine in one run: mlcomm (auto, shm and mpi transports), Open MPI,
# MPICH and Gloo. Rounds are interleaved (every peer once, then every peer again), so
# that slow drifts in a shared machine's load reach every peer alike; each size gets the
# median busbw over the rounds with its min-max spread, and mlcomm's ratio to each peer.
#
#   mlcomm-auto  bench/<coll>_bw --transport auto --vs-mpi --bound (the library's choice)
#   mlcomm-shm   bench/<coll>_bw --transport shm
#   mlcomm-mpi   bench/<coll>_bw --transport mpi
#   openmpi      the MPI reference of the mlcomm-auto run (--vs-mpi: same process, same buffers)
#   openmpi-c    bench/peers/mpi_coll_bw.c built with Open MPI (the build's MPI)
#   mpich        the same program built with MPICH's mpicc.mpich, run by mpirun.mpich
#   gloo         bench/peers/gloo_bw.py: torch.distributed's gloo backend on CPU tensors
#
# float32 (sum for the reductions), host buffers. Writes into OUTDIR: peers.txt (the
# table), peers.md (the same as Markdown), peers.json (every round's figures), peers.png
# (busbw against size, the memory bound drawn), and raw/ (each run's own output).
set -u

usage() {
  cat <<EOF
usage: bench/peers.sh [options] OUTDIR

Runs mlcomm, Open MPI, MPICH and Gloo on the same sweep, interleaved in rounds, and
writes into OUTDIR (created if missing) peers.txt, peers.md, peers.json, peers.png and
raw/ (every run's output).

  -c COLL     allreduce (default), broadcast, reduce, allgather, reduce_scatter
  -n NRANKS   ranks: 2 (default), 3 or 4 (more ranks than cores are oversubscribed)
  -r ROUNDS   rounds, every peer once per round (default 3; 1..20)
  -b SIZE     smallest size in bytes (default 16; K M G suffixes, powers of 1024)
  -e SIZE     largest size in bytes (default 64M)
  -f N        multiply the size by N from one row to the next (default 4)
  -I ITERS    timed calls per size and run (default 20)
  -W WARMUP   untimed calls per size and run, first (default 5)
  -p LIST     the columns, comma-separated (default all):
              mlcomm-auto,mlcomm-shm,mlcomm-mpi,openmpi,openmpi-c,mpich,gloo
  -B BUILDDIR the meson build dir holding bench/ (default build)
  -N          no memory-bandwidth measurement (--bound), so no bound in the table or plot
  -h          this text

Sizes are the benchmarks' size column (per rank; the total of all blocks for allgather
and reduce_scatter) and step as they do; with -f 4, -b 16 reaches -e 64M exactly.
broadcast runs mlcomm in place (--in-place), as MPI_Bcast and Gloo's broadcast have one
buffer. Ratios are mlcomm-auto's busbw over the peer's, the median of the per-round
ratios: above 1 means mlcomm is faster.

Environment: MPIRUN (Open MPI's launcher; default "mpirun.openmpi --oversubscribe
--allow-run-as-root"), MPIRUN_MPICH (default mpirun.mpich), MPICC_MPICH (default
mpicc.mpich, used when BUILDDIR has no mpi_coll_bw_mpich), GLOO_PYTHON (a Python
with torch; default /usr/bin/python3), PYTHON (for the table and the plot, with
matplotlib; default /usr/bin/python3), PEERS_RUN_TIMEOUT (seconds per run, default 600).
A peer whose launcher, compiler or module is missing gets "not installed" in its column;
one that lacks the collective (Gloo's reduce_scatter) "not supported".

Exit code 0 when every run that could start passed its check, 1 when one failed (the
others still run, and the table holds what passed), 2 on bad arguments.
EOF
}

coll=allreduce np=2 rounds=3 minb=16 maxb=64M factor=4 iters=20 warmup=5 build=build
all_peers=mlcomm-auto,mlcomm-shm,mlcomm-mpi,openmpi,openmpi-c,mpich,gloo
peers=$all_peers
want_bound=1
bad() { echo "peers.sh: $*" >&2; exit 2; }
is_int() { [[ $1 =~ ^[0-9]+$ ]]; }
is_size() { [[ $1 =~ ^[0-9]+[KMG]?$ ]]; }
while getopts "c:n:r:b:e:f:I:W:p:B:Nh" opt; do
  case $opt in
    c) coll=$OPTARG ;;
    n) np=$OPTARG ;;
    r) rounds=$OPTARG ;;
    b) minb=$OPTARG ;;
    e) maxb=$OPTARG ;;
    f) factor=$OPTARG ;;
    I) iters=$OPTARG ;;
    W) warmup=$OPTARG ;;
    p) peers=$OPTARG ;;
    B) build=$OPTARG ;;
    N) want_bound=0 ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || bad "give exactly one OUTDIR (run with -h for details)"
case $coll in
  allreduce | broadcast | reduce | allgather | reduce_scatter) ;;
  *) bad "-c '$coll' is not a collective; allowed: allreduce broadcast reduce allgather reduce_scatter" ;;
esac
case $np in 2 | 3 | 4) ;; *) bad "-n '$np' is not an allowed rank count; allowed: 2 3 4" ;; esac
{ is_int "$rounds" && [ "$rounds" -ge 1 ] && [ "$rounds" -le 20 ]; } ||
  bad "-r '$rounds' is not a round count; allowed: an integer from 1 to 20"
is_size "$minb" || bad "-b '$minb' is not a size; allowed: an integer with an optional K, M or G"
is_size "$maxb" || bad "-e '$maxb' is not a size; allowed: an integer with an optional K, M or G"
{ is_int "$factor" && [ "$factor" -ge 2 ]; } || bad "-f '$factor' is not a step factor; allowed: an integer of 2 or more"
{ is_int "$iters" && [ "$iters" -ge 1 ]; } || bad "-I '$iters' is not an iteration count; allowed: an integer of 1 or more"
is_int "$warmup" || bad "-W '$warmup' is not a warm-up count; allowed: an integer of 0 or more"
bytes() {
  local v=${1%[KMG]}
  case $1 in *K) v=$((v << 10)) ;; *M) v=$((v << 20)) ;; *G) v=$((v << 30)) ;; esac
  echo "$v"
}
[ "$(bytes "$minb")" -le "$(bytes "$maxb")" ] || bad "-b $minb is above -e $maxb"
selected=()
IFS=, read -r -a wanted <<< "$peers"
for p in "${wanted[@]}"; do
  case ",$all_peers," in *",$p,"*) ;; *) bad "-p: '$p' is not a column; allowed: $all_peers" ;; esac
  case " ${selected[*]} " in *" $p "*) ;; *) selected+=("$p") ;; esac
done
[ ${#selected[@]} -gt 0 ] || bad "-p names no column"
has() { case " ${selected[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

out=$1
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/bench
bench=$bin/${coll}_bw
[ -x "$bench" ] || bad "no $bench; build first (meson setup $build && ninja -C $build) or pass -B"
mkdir -p "$out/raw" || bad "cannot create $out/raw"
rm -f "$out"/raw/* "$out"/peers.txt "$out"/peers.md "$out"/peers.json "$out"/peers.png
python=${PYTHON:-/usr/bin/python3}
gloo_python=${GLOO_PYTHON:-/usr/bin/python3}
run_timeout=${PEERS_RUN_TIMEOUT:-600}
if [ -n "${MPIRUN:-}" ]; then
  read -r -a mpirun <<< "$MPIRUN"
elif command -v mpirun.openmpi >/dev/null 2>&1; then
  mpirun=(mpirun.openmpi --oversubscribe --allow-run-as-root)
else
  mpirun=(mpirun --oversubscribe --allow-run-as-root)
fi
read -r -a mpirun_mpich <<< "${MPIRUN_MPICH:-mpirun.mpich}"
mpicc_mpich=${MPICC_MPICH:-mpicc.mpich}
# raw/status: COLUMN ROUND STATUS lines (ok, failed, not-supported; not-installed with
# round 0); raw/absent: COLUMN REASON for each one not installed
status=$out/raw/status
: > "$status"
: > "$out/raw/absent"

# Which peers can run at all, decided once: a missing one is "not installed" in every round.
declare -A absent
mark_absent() { absent[$1]=$2; echo "== $1: not installed ($2)"; }
if has openmpi-c && [ ! -x "$bin/peers/mpi_coll_bw" ]; then
  mark_absent openmpi-c "no $bin/peers/mpi_coll_bw"
fi
mpich_exe=""
if has mpich; then
  if ! command -v "${mpirun_mpich[0]}" >/dev/null 2>&1; then
    mark_absent mpich "no ${mpirun_mpich[0]}"
  elif [ -x "$bin/peers/mpi_coll_bw_mpich" ]; then
    mpich_exe=$bin/peers/mpi_coll_bw_mpich
  elif command -v "$mpicc_mpich" >/dev/null 2>&1; then
    mkdir -p "$out/bin"
    mpich_exe=$out/bin/mpi_coll_bw_mpich
    "$mpicc_mpich" -O2 -std=c11 "$here/peers/mpi_coll_bw.c" -o "$mpich_exe" ||
      mark_absent mpich "$mpicc_mpich failed"
  else
    mark_absent mpich "no $mpicc_mpich, and $build has no mpi_coll_bw_mpich"
  fi
fi
if has gloo && ! "$gloo_python" -c 'import torch.distributed as d; assert d.is_gloo_available()' \
    >/dev/null 2>&1; then
  mark_absent gloo "$gloo_python cannot import torch.distributed with gloo"
fi

# The bench runs mlcomm: the auto run also carries the Open MPI reference and the bound.
in_place=()
[ "$coll" = broadcast ] && in_place=(--in-place)
sweep=(-b "$minb" -e "$maxb" -f "$factor")
# --bound goes to the first mlcomm run of each round; the table takes the best (highest)
# bound over the rounds, as the bench itself takes the best of its copies
bound_run=""
if [ $want_bound -eq 1 ]; then
  for t in auto shm mpi; do
    if has "mlcomm-$t" || { [ $t = auto ] && has openmpi; }; then bound_run=$t; break; fi
  done
fi

failed=()
run_start=$SECONDS
# record COLUMN ROUND RC [LOG]: the status line, and the failure remembered
record() {
  local col=$1 r=$2 rc=$3 log=${4:-}
  echo "   $col: exit $rc, $((SECONDS - run_start)) s"
  if [ "$rc" -eq 0 ]; then
    echo "$col $r ok" >> "$status"
  elif [ "$col" = gloo ] && [ "$rc" -eq 3 ]; then
    echo "$col $r not-supported" >> "$status"
  else
    echo "$col $r failed" >> "$status"
    failed+=("$col round $r (exit $rc${log:+, see $log})")
  fi
}

# mlcomm TRANSPORT ROUND
run_mlcomm() {
  local t=$1 r=$2 extra=()
  local name=mlcomm-${t}_r$r
  [ $t = auto ] && extra+=(--vs-mpi)
  [ $t = "$bound_run" ] && extra+=(--bound)
  run_start=$SECONDS
  timeout "$run_timeout" "${mpirun[@]}" -np "$np" "$bench" --transport "$t" --memory host \
    -d float -o sum "${sweep[@]}" -n "$iters" -w "$warmup" "${in_place[@]}" "${extra[@]}" \
    --json "$out/raw/$name.json" > "$out/raw/$name.txt" 2>&1
  local rc=$?
  record "mlcomm-$t" "$r" $rc "$out/raw/$name.txt"
  [ $t = auto ] && has openmpi && record openmpi "$r" $rc "$out/raw/$name.txt"
}

# prog COLUMN ROUND COMMAND...: mpi_coll_bw or gloo_bw.py, whose lines are the figures
run_prog() {
  local col=$1 r=$2
  shift 2
  run_start=$SECONDS
  timeout "$run_timeout" "$@" -c "$coll" "${sweep[@]}" -n "$iters" -w "$warmup" \
    > "$out/raw/${col}_r$r.txt" 2> "$out/raw/${col}_r$r.err"
  record "$col" "$r" $? "$out/raw/${col}_r$r.err"
}

start=$SECONDS
echo "== $coll, $np ranks, sizes $minb .. $maxb (x$factor), $rounds rounds: ${selected[*]}"
for ((r = 1; r <= rounds; r++)); do
  echo "== round $r of $rounds ($((SECONDS - start)) s)"
  for t in auto shm mpi; do
    if has "mlcomm-$t" || { [ $t = auto ] && has openmpi; }; then run_mlcomm $t $r; fi
  done
  if has openmpi-c && [ -z "${absent[openmpi-c]:-}" ]; then
    run_prog openmpi-c "$r" "${mpirun[@]}" -np "$np" "$bin/peers/mpi_coll_bw"
  fi
  if has mpich && [ -z "${absent[mpich]:-}" ]; then
    run_prog mpich "$r" "${mpirun_mpich[@]}" -np "$np" "$mpich_exe"
  fi
  if has gloo && [ -z "${absent[gloo]:-}" ]; then
    run_prog gloo "$r" "$gloo_python" "$here/peers/gloo_bw.py" --nranks "$np" \
      --timeout "$run_timeout"
  fi
done
for col in "${!absent[@]}"; do
  echo "$col 0 not-installed" >> "$status"
  echo "$col ${absent[$col]}" >> "$out/raw/absent"
done

"$python" "$here/peers/peers_table.py" --coll "$coll" --nranks "$np" --rounds "$rounds" \
  --iters "$iters" --warmup "$warmup" --columns "$(IFS=,; echo "${selected[*]}")" "$out"
table_rc=$?
echo "== done in $((SECONDS - start)) s; results in $out"
[ $table_rc -eq 0 ] || failed+=("the table or the plot (exit $table_rc)")
if [ ${#failed[@]} -gt 0 ]; then
  echo "peers.sh: failed: ${failed[*]}" >&2
  exit 1
fi
exit 0
