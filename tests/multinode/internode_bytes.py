#!/usr/bin/python3
"""Counts the bytes an allreduce sends between nodes, outside mlcomm.

For each layout, transport and size it runs allreduce_traffic (K allreduces of S bytes)
on fake nodes (mpirun_nodes.sh) under Open MPI's monitoring PML, which wraps ob1 and
writes, per rank, the bytes that rank's PML sent to each peer (pml_monitoring_*,
`ompi_info --all | grep monitoring`). That counts every message of every MPI call, the
collectives' internal messages included, whichever BTL carries them; shared memory that
mlcomm moves itself never passes through it, which is right: it never leaves a node.
The ranks' `RANK r NODE name` lines map ranks to nodes. The same run with K = 0 (only
creating and destroying the communicator) is subtracted, so the figure is per
allreduce.

  internode_bytes.py --program build/tests/multinode/allreduce_traffic \
      --layouts 2x2 3x2 --sizes 1M 4M 16M [--transports mpi auto] [--iters 5]
      [--check-flat] [--expect-ratio-at-most X]

--check-flat: flat MPI (-t mpi) must send what libnbc's ring allreduce sends, which
mlcomm's MPI transport picks at these sizes: each rank 2(p-1)/p x S to the next rank,
so the inter-node bytes are that times the ring links that cross nodes (within 3%).
--expect-ratio-at-most X: auto's bytes / mpi's bytes <= X for every layout and size.
--expect-minimum: auto sends at most 1.05 x what any allreduce between N nodes must
(each node's S-byte partial result reduced and spread among N nodes: 2(N-1)/N x S out
of every node). --map-by node deals ranks out round-robin (flat MPI's ring then crosses
nodes on every link).
Exits 1 when a check fails, 77 when fake nodes cannot be made here.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MONITORING = ["--mca", "pml", "ob1,monitoring",
              # 2: internal (collective) and external (user) messages counted apart,
              # both written out; the sum of the two is what crossed.
              "--mca", "pml_monitoring_enable", "2",
              "--mca", "pml_monitoring_enable_output", "3"]
TOLERANCE = 0.03


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size '{text}' (e.g. 4096, 64K, 16M)")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


def human(n):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):g} {unit}"
    return f"{n} B"


class Skip(Exception):
    pass


def run_once(args, layout, transport, size, iters):
    """Inter-node bytes sent by all ranks of one run, and the number of nodes."""
    with tempfile.TemporaryDirectory(prefix="internode-") as tmp:
        prefix = os.path.join(tmp, "rank")
        cmd = [args.launcher, layout] + ["--map-by", args.map_by] + MONITORING + \
              ["--mca", "pml_monitoring_filename", prefix, "--",
               args.program, "-t", transport, "-s", str(size), "-k", str(iters)]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=args.run_timeout)
        except subprocess.TimeoutExpired:
            sys.exit(f"FAIL: {' '.join(cmd)}: still running after {args.run_timeout} s")
        if p.returncode == 77:
            raise Skip(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "exit 77")
        if p.returncode != 0:
            sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}:\n{p.stdout}")
        node_of = {}
        for m in re.finditer(r"^RANK (\d+) NODE (\S+)$", p.stdout, re.M):
            node_of[int(m.group(1))] = m.group(2)
        files = glob.glob(prefix + ".*.prof")
        if not node_of or len(files) != len(node_of):
            sys.exit(f"FAIL: {layout} {transport}: {len(node_of)} ranks reported their node "
                     f"but the monitoring PML wrote {len(files)} files (is pml monitoring "
                     f"in this Open MPI?)\n{p.stdout}")
        crossed = 0
        for path in files:
            with open(path) as f:
                for line in f:
                    # "I|E <tab> src <tab> dst <tab> N bytes <tab> M msgs sent <tab> histogram"
                    fields = line.split("\t")
                    if fields[0] not in ("I", "E"):
                        continue
                    src, dst = int(fields[1]), int(fields[2])
                    if node_of[src] != node_of[dst]:
                        crossed += int(fields[3].split()[0])
        return crossed, node_of


def ring_links_across(node_of):
    p = len(node_of)
    return sum(node_of[r] != node_of[(r + 1) % p] for r in range(p))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--program", required=True, help="the allreduce_traffic executable")
    ap.add_argument("--launcher", default=os.path.join(HERE, "mpirun_nodes.sh"))
    ap.add_argument("--layouts", nargs="+", default=["2x2", "3x2"])
    ap.add_argument("--sizes", nargs="+", type=parse_size, default=[1 << 20, 4 << 20, 16 << 20])
    ap.add_argument("--transports", nargs="+", default=["mpi", "auto"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--run-timeout", type=int, default=120)
    ap.add_argument("--check-flat", action="store_true")
    ap.add_argument("--expect-ratio-at-most", type=float, metavar="X")
    ap.add_argument("--map-by", choices=["slot", "node"], default="slot",
                    help="rank placement: slot fills each node in turn (ranks of a node are "
                         "consecutive), node deals ranks out round-robin")
    ap.add_argument("--expect-minimum", action="store_true",
                    help="auto must send at most 5%% more than any allreduce between N nodes "
                         "must: 2(N-1)/N x S out of each node, 2(N-1) x S in all")
    args = ap.parse_args()
    if args.expect_ratio_at_most is not None and not {"mpi", "auto"} <= set(args.transports):
        ap.error("--expect-ratio-at-most compares auto with mpi: give both transports")

    failures = []
    try:
        rows = []
        for layout in args.layouts:
            for transport in args.transports:
                base, node_of = run_once(args, layout, transport, args.sizes[0], 0)
                for size in args.sizes:
                    total, node_of = run_once(args, layout, transport, size, args.iters)
                    rows.append((layout, transport, size, (total - base) / args.iters, node_of))
    except Skip as why:
        print(why)
        return 77

    print(f"bytes sent between nodes per allreduce (float32 sum, mean of {args.iters}, "
          f"creation subtracted)")
    print(f"{'layout':>7} {'size':>8} " + " ".join(f"{t:>14}" for t in args.transports) +
          ("  auto/mpi" if {"mpi", "auto"} <= set(args.transports) else "") +
          ("  ring formula" if args.check_flat else ""))
    table = {(l, t, s): (b, n) for l, t, s, b, n in rows}
    for layout in args.layouts:
        for size in args.sizes:
            cells = [table[(layout, t, size)][0] for t in args.transports]
            line = f"{layout:>7} {human(size):>8} " + " ".join(f"{b:14.0f}" for b in cells)
            node_of = table[(layout, args.transports[0], size)][1]
            nodes = len(set(node_of.values()))
            if {"mpi", "auto"} <= set(args.transports):
                flat, auto = table[(layout, "mpi", size)][0], table[(layout, "auto", size)][0]
                ratio = auto / flat if flat else float("inf")
                line += f"  {ratio:9.3f}"
                if args.expect_ratio_at_most is not None and ratio > args.expect_ratio_at_most:
                    failures.append(f"{layout} {human(size)}: auto sends {ratio:.3f} x flat "
                                    f"MPI's bytes between nodes, more than "
                                    f"{args.expect_ratio_at_most}")
            if args.expect_minimum and "auto" in args.transports:
                least = 2 * (nodes - 1) * size
                auto = table[(layout, "auto", size)][0]
                line += f"  minimum {least:.0f}"
                if auto > 1.05 * least:
                    failures.append(f"{layout} {human(size)}: auto sent {auto:.0f} bytes "
                                    f"between nodes, more than 1.05 x the {least:.0f} an "
                                    f"allreduce between {nodes} nodes needs")
            if args.check_flat and "mpi" in args.transports:
                p = len(node_of)
                want = ring_links_across(node_of) * 2 * (p - 1) / p * size
                flat = table[(layout, "mpi", size)][0]
                line += f"  {want:12.0f}"
                if abs(flat - want) > TOLERANCE * want:
                    failures.append(f"{layout} {human(size)}: flat MPI sent {flat:.0f} bytes "
                                    f"between nodes; the ring sends {want:.0f}")
                if flat <= size * nodes:
                    failures.append(f"{layout} {human(size)}: flat MPI sent {flat:.0f} bytes "
                                    f"between {nodes} nodes, not more than S per node")
            print(line)
    for f in failures:
        print("FAIL " + f)
    print(f"{len(rows)} measurements, {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
