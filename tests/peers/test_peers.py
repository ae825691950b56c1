#!/usr/bin/python3
"""bench/peers.sh end to end on a tiny sweep (one round, 2 ranks, few calls).

  1. every column: the table names each one and each ratio, every figure is a positive
     number, a peer that is not installed here says "not installed" (MPICH without
     mpirun.mpich, Gloo without torch), and peers.png is a PNG;
  2. MPICH and Gloo made absent through the environment (MPIRUN_MPICH, GLOO_PYTHON):
     their columns say "not installed" and the run still succeeds;
  3. bad arguments exit with 2.

usage: test_peers.py PEERS_SH BUILDDIR OUTDIR   (MPIRUN in the environment, as peers.sh)
Skipped (77) without matplotlib, which the plot needs.
"""

import json
import os
import shutil
import subprocess
import sys

ALL = ["mlcomm-auto", "mlcomm-shm", "mlcomm-mpi", "openmpi", "openmpi-c", "mpich", "gloo"]
PEERS = ["openmpi", "openmpi-c", "mpich", "gloo"]


def run(peers_sh, build, out, extra, env=None):
    shutil.rmtree(out, ignore_errors=True)
    argv = [peers_sh, "-B", build, "-r", "1", "-I", "3", "-W", "1"] + extra + [out]
    print("$", " ".join(argv), flush=True)
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=280)
    print(p.stdout)
    return p.returncode


def table(out):
    """The header cells and rows of peers.txt (cells split on two spaces or more)."""
    with open(os.path.join(out, "peers.txt")) as f:
        lines = [l.rstrip("\n") for l in f if not l.startswith("#")]
    split = lambda l: [c for c in (x.strip() for x in l.split("  ")) if c]
    return split(lines[0]), [split(l) for l in lines[1:]]


def check_png(out, problems):
    path = os.path.join(out, "peers.png")
    if not os.path.exists(path) or os.path.getsize(path) < 1000:
        problems.append("no peers.png (or an empty one)")
        return
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            problems.append("peers.png is not a PNG")


def installed(command):
    return shutil.which(command) is not None


def torch_here():
    return subprocess.run(["/usr/bin/python3", "-c",
                           "import torch.distributed as d; assert d.is_gloo_available()"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def main():
    peers_sh, build, outdir = sys.argv[1:4]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: matplotlib is not installed (apt-get install python3-matplotlib)")
        return 77
    problems = []

    # 1. every column
    out = os.path.join(outdir, "all")
    expect_absent = set()
    if not installed(os.environ.get("MPIRUN_MPICH", "mpirun.mpich")):
        expect_absent.add("mpich")
    if not torch_here():
        expect_absent.add("gloo")
    print("expected not installed here:", sorted(expect_absent) or "none")
    rc = run(peers_sh, build, out, ["-b", "1K", "-e", "64K", "-f", "8"])
    if rc != 0:
        problems.append("the full run exited with %d" % rc)
    header, rows = table(out)
    want = ["size (B)"] + ALL + ["auto/" + p for p in PEERS]
    if header != want:
        problems.append("header %s, expected %s" % (header, want))
    sizes = [r[0] for r in rows]
    if sizes != ["1024", "8192", "65536"]:
        problems.append("sizes %s, expected 1024 8192 65536" % sizes)
    for r in rows:
        for name, cell in zip(header[1:], r[1:]):
            peer = name[len("auto/"):] if name.startswith("auto/") else name
            if peer in expect_absent:
                if cell != "not installed":
                    problems.append("%s at %s B: '%s', expected 'not installed'"
                                    % (name, r[0], cell))
                continue
            try:
                value = float(cell.split()[0])
            except ValueError:
                problems.append("%s at %s B: '%s' is not a number" % (name, r[0], cell))
                continue
            if not value > 0:
                problems.append("%s at %s B: %s is not positive" % (name, r[0], cell))
    with open(os.path.join(out, "peers.json")) as f:
        summary = json.load(f)
    if not (summary.get("bound_busbw") or 0) > 0:
        problems.append("peers.json has no memory bound")
    check_png(out, problems)

    # 2. MPICH and Gloo absent
    out = os.path.join(outdir, "absent")
    env = dict(os.environ, MPIRUN_MPICH="/nonexistent", GLOO_PYTHON="/nonexistent")
    rc = run(peers_sh, build, out, ["-N", "-p", "mlcomm-shm,mpich,gloo", "-b", "4K", "-e", "4K"],
             env=env)
    if rc != 0:
        problems.append("the run with MPICH and Gloo absent exited with %d" % rc)
    header, rows = table(out)
    if header != ["size (B)", "mlcomm-shm", "mpich", "gloo"]:
        problems.append("absent run: header %s" % header)
    elif rows != [["4096", rows[0][1], "not installed", "not installed"]]:
        problems.append("absent run: rows %s, expected mpich and gloo 'not installed'" % rows)
    check_png(out, problems)

    # 3. bad arguments
    for bad in (["-n", "5"], ["-c", "alltoall"], ["-p", "nccl"], ["-r", "0"], []):
        argv = [peers_sh, "-B", build] + bad + ([os.path.join(outdir, "bad")] if bad else [])
        rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
        if rc != 2:
            problems.append("%s exited with %d, expected 2" % (" ".join(bad) or "no OUTDIR", rc))

    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
