#!/usr/bin/env python3
"""Tokens/s, communication share and bytes per step of each layout of train_gpt2 on the
same model and global batch (docs/gpt2.md, "Tensor, pipeline and data parallelism").

usage: parallel_figures.py TRAINER SHARD [--ranks 4] [--steps 12] [--rows 16] [--repeat 1]

Each layout runs SHARD for --steps steps of --rows rows x 64 tokens (the global batch),
one OpenMP thread per rank, -t mpi; tokens/s and the comm share are medians over steps
3 onwards of metrics.jsonl, and the bytes are those each rank handed mlcomm in the last
step (comm_bytes.json), summed over the ranks.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

MODEL = ["--depth", "4", "--channels", "128", "--heads", "4", "--seq-len", "64"]


def layouts(n):
    # name, tp, pp, dp, micro-batches
    out = [("DP=%d (allreduce)" % n, 1, 1, n, 1)]
    if n == 4:
        out += [("TP=4", 4, 1, 1, 1), ("PP=4, M=8", 1, 4, 1, 8), ("TP=2 x DP=2", 2, 1, 2, 1),
                ("PP=2 x DP=2, M=4", 1, 2, 2, 4), ("TP=2 x PP=2, M=8", 2, 2, 1, 8)]
    return out


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
    print("| layout | tok/s (median) | comm share | bytes per step: tp / pp / emb / dp (all ranks) |")
    print("|---|---|---|---|")
    for name, tp, pp, dp, M in layouts(a.ranks) * 1:
        best = None
        for _ in range(a.repeat):
            with tempfile.TemporaryDirectory() as d:
                cmd = ["mpirun", "--oversubscribe", "--allow-run-as-root", "-np", str(a.ranks),
                       a.trainer, "-i", a.shard, "-j", "none", "-n", str(a.steps), "-T", "64",
                       "-b", str(a.rows // dp), "--sample-every", "0", "--plot", "none",
                       "-t", "mpi", "-o", d, "--tensor-parallel", str(tp),
                       "--pipeline-parallel", str(pp), "--data-parallel", str(dp),
                       "--micro-batches", str(M)] + MODEL
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
                rows = [r for r in rows if "tok_per_s" in r and r["step"] >= 3]
                tok = statistics.median(r["tok_per_s"] for r in rows)
                comm = statistics.median(r["comm_frac"] for r in rows)
                traffic = json.load(open(d + "/comm_bytes.json"))["ranks"]
                sums = [sum(r[g] for r in traffic) for g in ("tp", "pp", "emb", "dp")]
                if best is None or tok > best[0]:
                    best = (tok, comm, sums)
        tok, comm, sums = best
        mb = " / ".join("%.2f MB" % (s / 1e6) if s else "-" for s in sums)
        print("| %s | %.0f | %.0f%% | %s |" % (name, tok, 100 * comm, mb), flush=True)


if __name__ == "__main__":
    main()
