#!/usr/bin/env bash
# Runs an MPI job across fake nodes on this one machine:
#
#   mpirun_nodes.sh LAYOUT [mpirun options] -- CMD [ARGS...]
#
# LAYOUT is NODESxRANKS (2x2: two nodes of two ranks) or the ranks of each node
# separated by commas (3,1). Node i is called fakenode<i>; ranks are placed in order,
# node 0 first. Each node's daemon is started by fake_ssh.sh in its own UTS and mount
# namespaces, so Open MPI sees separate hosts with separate /dev/shm, joined by TCP over
# the loopback. docs/multinode.md explains each option below. An `--mca NAME VALUE`
# among the mpirun options replaces this script's value for NAME (Open MPI refuses a
# name given twice).
#
# Exits 77 (Meson's "skipped"), saying why, where fake nodes cannot be made: they need
# root (or CAP_SYS_ADMIN) and a working unshare(1).
#
# `mpirun_nodes.sh --check` only runs that check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mpirun=${MPIRUN:-mpirun}

usage() {
  echo "usage: $0 LAYOUT [mpirun options] -- CMD [ARGS...]   (LAYOUT: 2x2, 3x2, 1x4, 3,1 ...)" >&2
  echo "       $0 --check" >&2
  exit 2
}

skip() {
  echo "SKIPPED: fake nodes cannot be made here: $*"
  exit 77
}

check_namespaces() {
  command -v unshare >/dev/null 2>&1 || skip "unshare(1) is not installed (util-linux)"
  [ "$(id -u)" -eq 0 ] || skip "not root: a mount namespace with a private /dev/shm needs root"
  local err
  if ! err=$(unshare --uts --mount --propagation private /bin/sh -c \
      'hostname fakenode-probe && mount -t tmpfs fakenode-probe /dev/shm' 2>&1); then
    skip "unshare --uts --mount with a private /dev/shm failed: ${err:-no message}"
  fi
}

[ $# -ge 1 ] || usage
if [ "$1" = "--check" ]; then
  check_namespaces
  echo "fake nodes can be made here"
  exit 0
fi

layout=$1
shift
declare -a per_node=()
if [[ $layout =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]]; then
  for ((i = 0; i < BASH_REMATCH[1]; i++)); do per_node+=("${BASH_REMATCH[2]}"); done
elif [[ $layout =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
  IFS=, read -r -a per_node <<<"$layout"
else
  echo "$0: bad layout '$layout'" >&2
  usage
fi

declare -a user_opts=()
declare -A user_mca=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  if [ "$1" = "--mca" ] || [ "$1" = "-mca" ]; then
    [ $# -ge 3 ] || usage
    user_mca[$2]=1
    user_opts+=("$1" "$2" "$3")
    shift 3
  else
    user_opts+=("$1")
    shift
  fi
done
[ $# -ge 2 ] || usage
shift

check_namespaces

hosts=""
for i in "${!per_node[@]}"; do
  hosts+="${hosts:+,}fakenode$i:${per_node[$i]}"
done

# Each fake node's daemon sees the whole machine and would bind its ranks from core 0
# on, piling the nodes' first ranks onto one core. No --oversubscribe: -H gives the
# slots, and an -np beyond them should be refused, not change the layout.
declare -a opts=(-H "$hosts" --bind-to none --allow-run-as-root)
mca() { [ -n "${user_mca[$1]:-}" ] || opts+=(--mca "$1" "$2"); }
# Each node's daemon is "ssh"ed to through fake_ssh.sh, always from mpirun itself: a
# daemon launching another would nest one fake node's namespaces inside another's.
mca plm_rsh_agent "$here/fake_ssh.sh"
mca plm_rsh_no_tree_spawn 1
# Loopback only, for the daemons' wiring and for the ranks' messages.
mca oob_tcp_if_include lo
mca btl_tcp_if_include lo
# ob1 over BTLs: vader (shared memory) inside a node, tcp between nodes. UCX or a
# verbs BTL would find the loopback or the real host some other way.
mca pml ob1
mca btl self,vader,tcp

exec "$mpirun" "${opts[@]}" "${user_opts[@]}" "$@"
