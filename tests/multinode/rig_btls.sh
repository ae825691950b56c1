#!/usr/bin/env bash
# The rig's claim about MPI's paths, checked with Open MPI's own refusals:
#  - between two fake nodes only tcp connects them: with shared memory (vader) and self
#    alone, Open MPI must report the two ranks unreachable, which also shows that it
#    sees two hosts;
#  - the same job with tcp and self alone works (over the loopback: mpirun_nodes.sh
#    allows no other interface);
#  - two ranks of one fake node do reach each other by vader alone.
#
#   rig_btls.sh PROGRAM      (PROGRAM: allreduce_traffic, which checks its result)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
program=$1
nodes="$here/mpirun_nodes.sh"
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

run() { # expect(0|fail) layout btls
  local expect=$1 layout=$2 btls=$3 rc
  timeout 60 "$nodes" "$layout" --mca btl "$btls" -- "$program" -t mpi -s 65536 -k 2 >"$out" 2>&1
  rc=$?
  if [ $rc -eq 77 ]; then
    cat "$out"
    exit 77
  fi
  if [ "$expect" = 0 ] && [ $rc -eq 0 ] && grep -q "correct" "$out"; then
    echo "ok: layout $layout with btl $btls works"
  elif [ "$expect" = fail ] && [ $rc -ne 0 ] && grep -q "unable to reach each other" "$out"; then
    echo "ok: layout $layout with btl $btls: Open MPI finds no path between the nodes"
  else
    echo "FAIL: layout $layout with btl $btls exited $rc, expected $expect:"
    cat "$out"
    failed=$((failed + 1))
  fi
}

run fail 2x1 self,vader
run 0 2x1 self,tcp
run 0 1x2 self,vader
[ $failed -eq 0 ] && echo "3 passed, 0 failed" || echo "$((3 - failed)) passed, $failed failed"
exit $((failed > 0))
