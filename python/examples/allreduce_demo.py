#!/usr/bin/env python3
"""allreduce from Python: a bandwidth table, and what the Python layer costs.

    mpirun -np 2 python3 python/examples/allreduce_demo.py
    # optionally against the C benchmark (run it first, same sizes):
    mpirun -np 2 build/bench/allreduce_bw -b 8 -e 64M -a 3 --json /tmp/c.json
    mpirun -np 2 python3 python/examples/allreduce_demo.py --c-json /tmp/c.json

For each size it runs, call by call on the same buffers:

* ``python_us``: ``comm.allreduce(x, op="sum", out=y)``, the public API;
* ``prepared_us``: ``call()`` of ``call = comm.prepare("allreduce", x, op="sum", out=y)``,
  whose arguments were checked and converted once;
* ``ctypes_us``: the same mlcommAllReduce called through ctypes with every argument
  prepared in advance, i.e. the C call plus the bare cost of a ctypes call.

``layer_us`` (and ``layer_%``, relative to ctypes_us) is what the bindings add to each
call: the median of the differences between the API call and the bare call of the
same iteration. ``prep_layer_%`` is the same for the prepared call.

Each call is timed on its own and the table shows medians, for the slowest rank
(``--means`` adds the means). Medians and paired differences keep other load on the
machine out of the figures. With --c-json it also prints the C benchmark's time for
the size (its mean over its -n iterations; run it with -a 3 so that it is the slowest
rank's too) and python_us minus it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

try:
    import mlcomm
except ImportError:  # running from a source checkout: use python/mlcomm next to this file
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    import mlcomm
from mlcomm import _lib


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
    return int(s[:-1] if mult > 1 else s) * mult


def human(n):
    for unit, m in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= m and n % m == 0:
            return f"{n // m} {unit}"
    return f"{n} B"


def slowest(comm, values):
    """Elementwise maximum over the ranks."""
    v = np.array(values, dtype=np.float64)
    comm.allreduce(v, op="max")
    return v


def timed_calls(comm, x, y, iters):
    """Per iteration, one call of each kind (API, prepared, bare ctypes), each timed on
    its own, in rotating order (whichever runs first after the loop's bookkeeping is
    favoured or not). Returns seconds, shape (3, iters)."""
    fn = _lib.L.mlcommAllReduce
    handle, count = comm.handle, x.size
    px, py = x.ctypes.data, y.ctypes.data
    prepared = comm.prepare("allreduce", x, op="sum", out=y)
    kinds = (lambda: comm.allreduce(x, op="sum", out=y), prepared,
             lambda: fn(px, py, count, 7, 0, handle))
    t = np.empty((3, iters))
    clock = time.perf_counter
    comm.barrier()
    for i in range(iters):
        for k in range(3):
            j = (i + k) % 3
            t0 = clock()
            kinds[j]()
            t[j, i] = clock() - t0
    return t


def load_c_rows(paths, n, rank):
    rows = {}
    for path in paths.split(","):
        with open(path) as f:
            c = json.load(f)
        if c.get("nranks") != n and rank == 0:
            print(f"# warning: {path} was measured on {c.get('nranks')} ranks, this run "
                  f"has {n}", file=sys.stderr)
        rows.update({r["size"]: r for r in c.get("rows", [])})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="8,1M,64M", help="bytes, comma-separated (K/M/G suffixes)")
    ap.add_argument("--seconds", type=float, default=0.5,
                    help="target time per size (sets the iteration count)")
    ap.add_argument("--iters", type=int, default=0, help="fixed iterations per size (overrides)")
    ap.add_argument("--mem-alloc", action="store_true",
                    help="buffers from mlcomm.mem_alloc instead of numpy")
    ap.add_argument("--c-json", help="allreduce_bw --json output(s) to compare with, "
                    "comma-separated (a later file's row of a size wins)")
    ap.add_argument("--transport", default=None, help="auto|mpi|shm|nccl")
    ap.add_argument("--means", action="store_true", help="also print the mean times")
    args = ap.parse_args()

    comm = mlcomm.Comm.world(transport=args.transport)
    n, rank = comm.size, comm.rank
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    c_rows = load_c_rows(args.c_json, n, rank) if args.c_json else {}

    if rank == 0:
        print(f"# mlcomm {'.'.join(map(str, mlcomm.version()))} ({mlcomm.library_path()}), "
              f"{n} ranks, float32 sum, out of place, "
              f"{'mem_alloc' if args.mem_alloc else 'numpy'} buffers, transport "
              f"{comm.config['transport']}; times in us, medians of the slowest rank")
        head = (f"{'size':>10} {'count':>10} {'python_us':>10} {'busbw':>7} {'ctypes_us':>10} "
                f"{'layer_us':>9} {'layer_%':>8} {'prepared_us':>12} {'prep_layer_%':>13}")
        if c_rows:
            head += f" {'c_bench_us':>11} {'py-c_us':>8} {'py-c_%':>7}"
        if args.means:
            head += f" {'python_mean':>12} {'ctypes_mean':>12}"
        print(head)
    wrong = 0
    for size in sizes:
        count = max(1, size // 4)
        if args.mem_alloc:
            x = mlcomm.mem_alloc(comm, count, np.float32)
            y = mlcomm.mem_alloc(comm, count, np.float32)
        else:
            x = np.empty(count, np.float32)
            y = np.empty(count, np.float32)
        x[:] = rank + 1
        y[:] = -1
        comm.allreduce(x, op="sum", out=y)  # checked once, like the C benchmark
        wrong += int(np.count_nonzero(y != n * (n + 1) / 2))
        x[:] = 0  # sums of zeros stay bounded and cost the same as any other value
        for _ in range(3):  # warm-up
            comm.allreduce(x, op="sum", out=y)
        if args.iters:
            iters = args.iters
        else:
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce(x, op="sum", out=y)
            est = slowest(comm, [time.perf_counter() - t0])[0]
            iters = int(max(5, min(50000, args.seconds / 3 / max(est, 1e-7))))
        t = timed_calls(comm, x, y, iters) * 1e6
        api, prep, raw = t
        # the layer figures are medians of the differences with the bare call of the
        # same iteration: calls that close together see the same machine state
        py_us, prep_us, raw_us, layer, prep_layer, py_mean, raw_mean = slowest(
            comm, [np.median(api), np.median(prep), np.median(raw), np.median(api - raw),
                   np.median(prep - raw), api.mean(), raw.mean()])
        if rank == 0:
            busbw = count * 4 / (py_us * 1e-6) / 1e9 * (2 * (n - 1) / n if n > 1 else 1)
            line = (f"{count * 4:>10} {count:>10} {py_us:>10.2f} {busbw:>7.2f} {raw_us:>10.2f} "
                    f"{layer:>9.2f} {100 * layer / raw_us:>7.1f}% {prep_us:>12.2f} "
                    f"{100 * prep_layer / raw_us:>12.1f}%")
            if c_rows:
                cr = c_rows.get(count * 4)
                if cr:
                    d = py_us - cr["time_us"]
                    line += f" {cr['time_us']:>11.2f} {d:>8.2f} {100 * d / cr['time_us']:>6.1f}%"
                else:
                    line += f" {'-':>11} {'-':>8} {'-':>7}"
            if args.means:
                line += f" {py_mean:>12.2f} {raw_mean:>12.2f}"
            print(line + f"   # {human(count * 4)}, {iters} iters", flush=True)
    if rank == 0:
        print(f"# wrong values: {wrong} (rank 0)")
    comm.destroy()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
