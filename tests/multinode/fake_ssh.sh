#!/bin/sh
# Open MPI's rsh launcher calls this instead of ssh: `fake_ssh.sh [ssh options] HOST CMD...`.
# It starts the daemon command on this machine, but in its own UTS and mount
# namespaces, so that the daemon and every rank it forks see HOST as their host name
# (Open MPI then treats each name as a separate node) and a /dev/shm of their own (so
# that shared memory between two fake nodes cannot work by accident: a transport that
# tried it would fail, not pass silently). Processes, the network and the rest of the
# file system stay shared; that is what lets loopback TCP connect the nodes.
set -eu

# ssh would consume its own options; Open MPI may pass some (plm_rsh_args). Those that
# take a value are skipped with it.
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOopQRSWw]) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "fake_ssh.sh: usage: fake_ssh.sh [ssh options] HOST CMD..." >&2; exit 2; }
host=$1
shift

# Like ssh, the remote command is the remaining words joined by spaces and read by a
# shell: Open MPI quotes its daemon's arguments for exactly that.
exec unshare --uts --mount --propagation private /bin/sh -c '
  hostname "$1" || { echo "fake_ssh.sh: cannot set the host name $1" >&2; exit 1; }
  mount -t tmpfs -o mode=1777,size=50% fakenode-shm /dev/shm ||
    { echo "fake_ssh.sh: cannot mount a private /dev/shm for $1" >&2; exit 1; }
  shift
  exec /bin/sh -c "$*"' fake_ssh "$host" "$@"
