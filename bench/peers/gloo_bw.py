#!/usr/bin/python3
"""Gloo's collectives timed the way bench/peers/mpi_coll_bw.c times MPI's.

Starts NRANKS processes on this machine (each is this script with --rank), joins them
in a torch.distributed process group with the gloo backend through a file store in a
temporary directory (Gloo's pairs connect over the loopback interface only), and times
one collective over a sweep of sizes on float32 CPU tensors (sum for the reductions).

Per size: the inputs are set and one call is checked against the expected result, then
-w untimed calls, a barrier, and -n timed calls. Each rank's time is its average per
call, the row's time the mean over ranks; busbw uses nccl-tests' bus factors, and sizes
are rounded as the mlcomm benchmarks round them (whole floats, and whole blocks of
nranks floats for allgather and reduce_scatter).

Gloo works on tensors in place: all_reduce and reduce overwrite their input, broadcast
has one buffer, all_gather gathers into a list of NRANKS tensors (here views of one
buffer). Gloo in torch 1.13 has no reduce_scatter: asked for it, this prints the reason
and exits with 3.

Output (rank 0, stdout): '#' header lines, then one line per size:
    size count time_us algbw busbw wrong
Exit code 0 when every check passed, 1 when a check or a rank failed, 2 on bad
arguments, 3 when Gloo (or torch) lacks the collective, 4 when torch or its gloo
backend cannot be imported.

Needs torch (Debian: apt-get install python3-torch; run with /usr/bin/python3).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

COLLS = ("allreduce", "broadcast", "reduce", "allgather", "reduce_scatter")


def parse_size(text):
    mul = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if mul > 1 else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError("'%s' is not a size (an integer, optional K M G)"
                                         % text)
    return int(digits) * mul


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("'%s' is not a positive integer" % text)
    return int(text)


def sizes(minbytes, maxbytes, factor, unit):
    """The benchmarks' sweep: from -b, times -f while within -e, rounded down to unit."""
    out, size = [], minbytes
    while True:
        rounded = size // unit * unit
        if rounded and (not out or rounded != out[-1]):
            out.append(rounded)
        nxt = 1 if size == 0 else size * factor
        if nxt > maxbytes:
            return out
        size = nxt


def bus_factor(coll, n):
    if coll == "allreduce":
        return 2.0 * (n - 1) / n
    if coll in ("allgather", "reduce_scatter"):
        return (n - 1) / n
    return 1.0


def rank_main(args):
    try:
        import torch
        import torch.distributed as dist
    except ImportError as e:
        print("gloo_bw.py: cannot import torch.distributed: %s" % e, file=sys.stderr)
        return 4
    import datetime

    rank, n = args.rank, args.nranks
    torch.set_num_threads(1)  # one rank per core, as the MPI ranks
    dist.init_process_group("gloo", init_method="file://" + args.store, rank=rank,
                            world_size=n, timeout=datetime.timedelta(seconds=args.timeout))
    coll = args.c
    unit = 4 * n if coll in ("allgather", "reduce_scatter") else 4
    sweep = sizes(args.b, args.e, args.f, unit)
    maxcount = max(sweep) // 4 if sweep else 1
    send = torch.zeros(maxcount, dtype=torch.float32)
    recv = torch.zeros(maxcount, dtype=torch.float32)

    def make_call(count):
        block = count // n
        s, r = send[:count], recv[:count]
        if coll == "allreduce":
            return lambda: dist.all_reduce(r, op=dist.ReduceOp.SUM)
        if coll == "broadcast":
            return lambda: dist.broadcast(r, src=0)
        if coll == "reduce":
            return lambda: dist.reduce(r, dst=0, op=dist.ReduceOp.SUM)
        if coll == "allgather":
            outs = list(r.split(block))
            mine = s[:block]
            return lambda: dist.all_gather(outs, mine)
        outs = list(s.split(block))
        mine = r[:block]
        return lambda: dist.reduce_scatter(mine, outs, op=dist.ReduceOp.SUM)

    def checked(count, call):
        """Sets the inputs, runs one call, counts this rank's wrong elements."""
        block = count // n
        i = torch.arange(count, dtype=torch.int64)
        pattern = (1 + i % 7).to(torch.float32)
        ranks_sum = n * (n + 1) / 2
        if coll == "allgather":
            send[:block] = (rank + 1) * pattern[:block]
            recv[:count] = -1
            call()
            expect = (i // block + 1).to(torch.float32) * (1 + (i % block) % 7).to(torch.float32)
            return int((recv[:count] != expect).sum())
        if coll == "reduce_scatter":
            send[:count] = (rank + 1) * pattern
            recv[:count] = -1
            call()
            expect = ranks_sum * pattern[rank * block:(rank + 1) * block]
            return int((recv[:block] != expect).sum())
        # allreduce, reduce, broadcast: in place on recv
        recv[:count] = (rank + 1) * pattern if coll != "broadcast" or rank == 0 else -1
        call()
        if coll == "reduce" and rank != 0:
            return 0
        expect = pattern if coll == "broadcast" else ranks_sum * pattern
        return int((recv[:count] != expect).sum())

    if rank == 0:
        print("# library torch %s gloo" % torch.__version__)
        print("# gloo_bw %s, nranks %d, float sum, iters %d, warmup %d"
              % (coll, n, args.n, args.w))
        print("# size count time_us algbw busbw wrong", flush=True)
    wrong_total = 0
    for size in sweep:
        count = size // 4
        call = make_call(count)
        try:
            wrong = checked(count, call)
        except RuntimeError as e:
            if "support" in str(e):
                if rank == 0:
                    print("# unsupported: %s" % str(e).splitlines()[0], flush=True)
                return 3
            raise
        for _ in range(args.w):
            call()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(args.n):
            call()
        us = (time.perf_counter() - t0) * 1e6 / args.n
        stats = torch.tensor([us, wrong], dtype=torch.float64)
        dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        if rank == 0:
            t = float(stats[0]) / n
            algbw = size / (t * 1e3)
            wrong_sum = int(stats[1])
            wrong_total += wrong_sum
            print("%d %d %.3f %.6f %.6f %d" % (size, count, t, algbw,
                                              algbw * bus_factor(coll, n), wrong_sum),
                  flush=True)
    dist.barrier()
    dist.destroy_process_group()
    return 1 if wrong_total else 0


def launch(args):
    """Starts the ranks, waits for all; the first failure's exit code wins."""
    with tempfile.TemporaryDirectory(prefix="gloo_bw.") as tmp:
        store = os.path.join(tmp, "store")
        env = dict(os.environ, GLOO_SOCKET_IFNAME=os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
                   OMP_NUM_THREADS="1")
        argv = [sys.executable, os.path.abspath(__file__), "-c", args.c, "-b", str(args.b),
                "-e", str(args.e), "-f", str(args.f), "-n", str(args.n), "-w", str(args.w),
                "--nranks", str(args.nranks), "--timeout", str(args.timeout),
                "--store", store]
        procs = [subprocess.Popen(argv + ["--rank", str(r)], env=env,
                                  stdout=None if r == 0 else subprocess.DEVNULL)
                 for r in range(args.nranks)]
        # stopped from outside (timeout(1), ^C): the ranks go too, rather than wait for
        # each other until their own timeout
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        try:
            return wait_all(procs, args.timeout)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()


def wait_all(procs, timeout):
    """The first failure's exit code (3 and 4 first: the collective or torch missing)."""
    deadline = time.monotonic() + timeout
    codes = [None] * len(procs)
    while None in codes:
        codes = [p.poll() for p in procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            # a rank failed: the others would wait for it until their own timeout
            time.sleep(0.5)
            failed = [c for c in (p.poll() for p in procs) if c not in (None, 0)]
            return 3 if 3 in failed else 4 if 4 in failed else 1
        if time.monotonic() > deadline:
            print("gloo_bw.py: ranks still running after %d s; stopped" % timeout,
                  file=sys.stderr)
            return 1
        time.sleep(0.05)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", choices=COLLS, default="allreduce", help="the collective")
    p.add_argument("-b", type=parse_size, default=8, help="smallest size in bytes (8)")
    p.add_argument("-e", type=parse_size, default=64 << 20, help="largest size (64M)")
    p.add_argument("-f", type=positive, default=2, help="size factor per row (2)")
    p.add_argument("-n", type=positive, default=20, help="timed calls per size (20)")
    p.add_argument("-w", type=int, default=5, help="untimed calls per size first (5)")
    p.add_argument("--nranks", "-np", type=positive, default=2, help="processes (2)")
    p.add_argument("--timeout", type=positive, default=300,
                   help="seconds before the ranks are stopped (300)")
    p.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    p.add_argument("--store", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.f < 2 or args.w < 0 or args.b > args.e:
        p.error("need -f >= 2, -w >= 0 and -b <= -e")
    if args.rank is None:
        return launch(args)
    return rank_main(args)


if __name__ == "__main__":
    sys.exit(main())
