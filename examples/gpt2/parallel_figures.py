#!/usr/bin/env python3
"""Tokens/s, communication share and bytes per step of each layout of train_gpt2 on the
same model and global batch (docs/gpt2.md, "Tensor, pipeline and data parallelism").

usage: parallel_figures.py TRAINER SHARD [--ranks 4] [--steps 12] [--rows 16] [--repeat 1]

With --repeat N every layout runs N times, in N rounds over all layouts, and the best
run of each is shown.

Each layout runs SHARD for --steps steps of --rows rows x 64 tokens (the global batch),
one OpenMP thread per rank, -t mpi; tokens/s and the comm share are medians over steps
3 onwards of metrics.jsonl, and the bytes are those each rank handed mlcomm in the last
step (comm_bytes.json), summed over the ranks, next to what the formula of
tests/test_train_parallel.py gives for them. "plain" is the data-parallel trainer
without the model-parallel flags (its all-reduces overlap backward).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"))
from test_train_parallel import expected_bytes  # noqa: E402

MODEL = ["--depth", "4", "--channels", "128", "--heads", "4", "--seq-len", "64"]
SHAPE = dict(C=128, L=4, MAXT=64, V=50257, T=64)


def plain_params():
    C, L, T, Vp = SHAPE["C"], SHAPE["L"], SHAPE["MAXT"], (SHAPE["V"] + 127) // 128 * 128
    return Vp * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


def layouts(n):
    # name, tp, pp, dp, micro-batches
    out = [("plain, %d ranks (allreduce)" % n, 1, 1, 0, 1), ("DP=%d (allreduce)" % n, 1, 1, n, 1)]
    if n == 4:
        out += [("TP=4", 4, 1, 1, 1), ("PP=4, M=8", 1, 4, 1, 8), ("TP=2 x DP=2", 2, 1, 2, 1),
                ("PP=2 x DP=2, M=4", 1, 2, 2, 4), ("TP=2 x PP=2, M=8", 2, 2, 1, 8)]
    return out


def measure(a, env, name, tp, pp, dp, M):
    """One run of a layout: (tok/s, rank 0's comm share, bytes per group, mean share, = formula)."""
    with tempfile.TemporaryDirectory() as d:
        replicas = dp or a.ranks
        cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(a.ranks),
               a.trainer, "-i", a.shard, "-j", "none", "-n", str(a.steps), "-T", "64",
               "-b", str(a.rows // replicas), "--sample-every", "0", "--plot", "none",
               "-t", "mpi", "-o", d] + MODEL
        if dp:
            cmd += ["--tensor-parallel", str(tp), "--pipeline-parallel", str(pp),
                    "--data-parallel", str(dp), "--micro-batches", str(M)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
        rows = [r for r in rows if "tok_per_s" in r and r["step"] >= 3]
        tok = statistics.median(r["tok_per_s"] for r in rows)
        comm = statistics.median(r["comm_frac"] for r in rows)
        sums, mean, same = None, None, "-"
        if dp:
            traffic = json.load(open(d + "/comm_bytes.json"))["ranks"]
            groups = ("tp", "pp", "emb", "dp")
            sums = [sum(r[g] for r in traffic) for g in groups]
            mean = statistics.mean(r["comm_frac"] for r in traffic)
            want = [expected_bytes(tp, pp, dp, M, a.rows // dp, i // tp % pp,
                                   shape=SHAPE) for i in range(a.ranks)]
            same = "yes" if all(traffic[i][g] == want[i][g] for i in range(a.ranks)
                                for g in groups) else "NO"
        return tok, comm, sums, mean, same


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trainer")
    ap.add_argument("shard")
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    print("| layout | tok/s (best) | all runs | comm share: rank 0, mean of ranks | MB per step, "
          "all ranks: tp / pp / emb / dp | = formula |")
    print("|---|---|---|---|---|---|")
    best, runs = {}, {}
    for _ in range(a.repeat):  # rounds over all layouts, so a burst of load hits them all
        for lay in layouts(a.ranks):
            r = measure(a, env, *lay)
            runs.setdefault(lay, []).append(r[0])
            if lay not in best or r[0] > best[lay][0]:
                best[lay] = r
    for lay in layouts(a.ranks):
        name = lay[0]
        tok, comm, sums, mean, same = best[lay]
        mb = " / ".join("%.2f" % (s / 1e6) if s else "-" for s in sums) if sums else \
            "%.2f dp (the gradient, not counted)" % (a.ranks * 4 * plain_params() / 1e6)
        share = "%.0f%%, %.0f%%" % (100 * comm, 100 * mean) if mean is not None else \
            "%.0f%%" % (100 * comm)
        spread = "%.0f-%.0f" % (min(runs[lay]), max(runs[lay]))
        print("| %s | %.0f | %s | %s | %s | %s |" % (name, tok, spread, share, mb, same),
              flush=True)


if __name__ == "__main__":
    main()
