#!/bin/sh
# bench_device.sh PROBE MPIRUN [MPIRUN ARGS...] -- BENCH [BENCH ARGS...]
# Runs a benchmark with device buffers once PROBE says a GPU is usable; exits 77 (SKIP)
# with PROBE's reason otherwise. The benchmark checks its results (-c 1), so a wrong
# answer fails the test.
probe=$1; shift
"$probe" || exit $?
exec "$@"
