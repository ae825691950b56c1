#!/usr/bin/env python3
"""Runs test_shm_faults -m kill under mpirun and decides whether it passed.

usage: shm_fault_driver.py NRANKS VICTIM BOUND_S LIMIT_S -- mpirun [args...] PROGRAM [args...]

Why a driver: the kill scenario needs `mpirun --enable-recovery` (without it, Open MPI
aborts the whole job when the victim dies from SIGKILL), the survivors leave with
_exit(0) instead of MPI_Finalize (which hangs with a dead peer), and under
--enable-recovery mpirun's exit status no longer reflects the ranks'. So the ranks print
their findings and this script judges them:

  - every survivor (every rank but VICTIM) printed "VERDICT rank R PASS ...";
  - the victim printed no VERDICT (it was killed inside its collective);
  - rank 0 printed "KILLTIME t" and every survivor "RETURNED rank R t2 ...", with
    t2 - t <= BOUND_S (both are CLOCK_MONOTONIC seconds of this node);
  - no "SEGMENT path" a rank printed exists any more once the job is over;
  - the job ended within LIMIT_S seconds (otherwise its process group is killed).

Exit status: 0 pass, 1 fail, 77 skipped (the program printed "SKIPPED:").
"""
import glob
import os
import re
import signal
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 7 or sys.argv[5] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    nranks, victim = int(sys.argv[1]), int(sys.argv[2])
    bound, limit = float(sys.argv[3]), float(sys.argv[4])
    cmd = sys.argv[6:]
    survivors = [r for r in range(nranks) if r != victim]

    before = set(glob.glob("/dev/shm/mlcomm-*"))
    print("# running:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True, errors="replace")

    def kill_group(*_):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # meson sends SIGTERM on its own timeout: take the job down with us.
    signal.signal(signal.SIGTERM, lambda *a: (kill_group(), sys.exit(1)))
    t0 = time.monotonic()
    hung = False
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        hung = True
        kill_group()
        out, _ = proc.communicate()
    wall = time.monotonic() - t0
    kill_group()  # anything left of the job (nothing, normally)
    sys.stdout.write(out)
    if not out.endswith("\n"):
        sys.stdout.write("\n")
    print("# mpirun exited with %s after %.1f s" % (proc.returncode, wall))

    if "SKIPPED:" in out and "VERDICT" not in out:
        return 77

    failures = []
    if hung:
        failures.append("the job did not end within %.0f s (killed)" % limit)

    verdicts = {}
    for m in re.finditer(r"^VERDICT rank (\d+) (PASS|FAIL)(.*)$", out, re.M):
        verdicts.setdefault(int(m.group(1)), []).append(m.group(2) + m.group(3))
    for r in survivors:
        v = verdicts.get(r)
        if not v:
            failures.append("rank %d (a survivor) printed no verdict" % r)
        elif len(v) != 1 or not v[0].startswith("PASS"):
            failures.append("rank %d: %s" % (r, "; ".join(v)))
    if victim in verdicts:
        failures.append("the victim (rank %d) printed a verdict, so it was not killed inside "
                        "its collective: %s" % (victim, "; ".join(verdicts[victim])))

    m = re.search(r"^KILLTIME ([0-9.]+)", out, re.M)
    kill_time = float(m.group(1)) if m else None
    if kill_time is None:
        failures.append("rank 0 printed no KILLTIME (the victim was never killed)")
    returned = {int(a): (float(b), c) for a, b, c in
                re.findall(r"^RETURNED rank (\d+) ([0-9.]+) result (.*)$", out, re.M)}
    for r in survivors:
        if r not in returned:
            failures.append("rank %d never returned from its collective" % r)
        elif kill_time is not None:
            dt = returned[r][0] - kill_time
            print("# rank %d returned %.3f s after the kill: %s" % (r, dt, returned[r][1]))
            if dt > bound:
                failures.append("rank %d returned %.2f s after the kill (bound %.1f s)"
                                % (r, dt, bound))

    segments = set(re.findall(r"^SEGMENT (\S+)", out, re.M))
    for path in sorted(segments):
        if os.path.exists(path):
            failures.append("%s still exists in /dev/shm after the job" % path)
    if segments:
        print("# segments of the job, all gone from /dev/shm:" if not any(
            os.path.exists(p) for p in segments) else "# segments of the job:",
            " ".join(sorted(segments)))
    others = set(glob.glob("/dev/shm/mlcomm-*")) - before - segments
    if others:
        # Not ours as far as the ranks can tell (another job on this machine?): report only.
        print("# note: other /dev/shm/mlcomm-* entries appeared meanwhile:", " ".join(sorted(others)))

    if failures:
        for f in failures:
            print("FAIL", f)
        return 1
    print("PASS: every survivor got the error within %.1f s of the kill" % bound)
    return 0


if __name__ == "__main__":
    sys.exit(main())
