#!/usr/bin/env python3
"""train_gpt2 with tensor, pipeline and data parallelism, under mpirun, on the tiny model
and synthetic shards of test_train.py.

usage: test_train_parallel.py CASE --trainer PATH --mpirun PATH

CASE is one of
  layouts  TP=2, PP=2 (2 micro-batches), TP=2 x PP=2 (4 micro-batches; and 2 on -t shm),
           TP=2 x DP=2 (--sync allreduce and zero1), TP=2 x PP=2 x DP=2 on 8 ranks, TP=2 x PP=2 x DP=4 (zero1) on 16,
           1 rank in 2 micro-batches (each drawing text samples from the gathered model) give the 1-rank run's train and val losses within 1e-5 relative for 10 steps
           at the same global batch; the bytes each rank hands mlcomm per step and group
           (OUT/comm_bytes.json) equal the formula below; the TP=2 x PP=2 run's --save is
           an llm.c file holding the 1-rank run's final parameters (within 1e-5), which
           the 1-rank trainer loads, and a TP=2 x PP=2 run started from the 1-rank run's
           file (-e) evaluates it as the 1-rank run did
  stages   a 4-layer model in 4 stages (two of them middle stages, which hold no wte):
           PP=4 with 4 micro-batches and PP=4 x DP=2 zero1 on 8 ranks give the 1-rank
           losses, and the bytes of the formula
  resume   checkpoints hold the whole model, not a layout: with shuffled data, a TP=2 x
           PP=2 run and a TP=2 x DP=2 zero1 run checkpointing at step 4 give the 1-rank
           run's losses; the 1-rank trainer resumes the first's step 4, a PP=2 run the
           1-rank run's, the plain trainer on 2 ranks the zero1 run's, and all give the
           1-rank run's steps 5-8 (within 1e-5 relative)
  errors   layouts the ranks or the model do not allow are refused on every rank, with
           a sentence naming the flag, and nothing hangs
"""
import argparse
import json
import os
import struct
import sys
import tempfile

import test_train as tt
from test_train import check, compare, metrics, run, run_ranks

TINY = dict(C=32, L=2, MAXT=32, V=tt.V, T=16)  # test_train.SHAPE, -T 16
STEPS = 10


def shard_sizes(tp, pp, stage, shape=TINY):
    """Floats a rank holds: wte rows, its layers, and what it trains (stage_owned)."""
    C, L, MAXT, V = shape["C"], shape["L"], shape["MAXT"], shape["V"]
    vs = (V + tp - 1) // tp
    a, f = C // tp, 4 * C // tp  # the heads' channels, MLP units (NH divides by tp)
    layer = 6 * C + 4 * a * C + 3 * a + 2 * f * C + f
    nl = L // pp
    first, last = stage == 0, stage == pp - 1
    owned = (vs * C if first or last else 0) + (MAXT * C if first else 0) + nl * layer + \
        (2 * C if last else 0)
    return vs, nl, owned


def expected_bytes(tp, pp, dp, M, B, stage, sync="allreduce", shape=TINY):
    """Bytes a rank of this stage hands mlcomm per step, per group (see docs/gpt2.md)."""
    C, T = shape["C"], shape["T"]
    vs, nl, owned = shard_sizes(tp, pp, stage, shape)
    Bm = B // M
    act = Bm * T * C * 4  # one micro-batch's (Bm,T,C) floats
    first, last = stage == 0, stage == pp - 1
    per_mb_tp = (4 * nl + first + last) * act + (3 * Bm * T * 4 if last else 0)
    return {"tp": M * per_mb_tp if tp > 1 else 0,
            "pp": M * act * ((stage < pp - 1) + (stage > 0)) if pp > 1 else 0,
            "emb": vs * C * 4 if pp > 1 and (first or last) else 0,
            "dp": 0 if dp == 1 else owned * 4 if sync == "allreduce" else zero1_bytes(owned, dp)}


def zero1_bytes(owned, dp):
    """ReduceScatter of the padded buffer, AllGather of one shard (multiples of 16)."""
    shard = (owned + 16 * dp - 1) // (16 * dp) * 16
    return 4 * (shard * dp + shard)


def read_params(path):
    with open(path, "rb") as f:
        f.read(1024)
        body = f.read()
    return struct.unpack("<%df" % (len(body) // 4), body)


def check_bytes(name, out, tp, pp, dp, M, B, sync, shape=TINY):
    with open(out + "/comm_bytes.json") as f:
        got = json.load(f)
    check((got["tp"], got["pp"], got["dp"], got["micro_batches"]) == (tp, pp, dp, M),
          "%s: layout in comm_bytes.json %s" % (name, got))
    for r, x in enumerate(got["ranks"]):
        want = expected_bytes(tp, pp, dp, M, B, r // tp % pp, sync, shape)
        for g in want:
            check(x[g] == want[g], "%s rank %d: %s bytes %d, formula %d" % (name, r, g, x[g],
                                                                            want[g]))


def case_layouts(a, d):
    train, val = tt.make_data(d)
    ref = d + "/np1"
    base = lambda out, B, extra: tt.base_args(train, val, out, B, steps=STEPS, extra=extra)
    if not run(1, a.trainer, a.mpirun, base(ref, 4, ["--save", ref + "/final.bin"])):
        return
    t1, v1 = metrics(ref + "/metrics.jsonl")
    check(len(t1) == STEPS and t1[STEPS][0] < t1[1][0], "the reference run trains: %s" % t1)
    layouts = [  # name, ranks, tp, pp, dp, micro-batches, rows per replica, --sync, -t
        ("TP=2", 2, 2, 1, 1, 1, 4, "allreduce", "mpi"),
        ("PP=2", 2, 1, 2, 1, 2, 4, "allreduce", "mpi"),
        ("TP=2 x PP=2", 4, 2, 2, 1, 4, 4, "allreduce", "mpi"),
        ("TP=2 x PP=2 -t shm", 4, 2, 2, 1, 2, 4, "allreduce", "shm"),
        ("TP=2 x DP=2", 4, 2, 1, 2, 1, 2, "allreduce", "mpi"),
        ("TP=2 x DP=2 zero1", 4, 2, 1, 2, 1, 2, "zero1", "mpi"),
        ("TP=2 x PP=2 x DP=2", 8, 2, 2, 2, 2, 2, "allreduce", "mpi"),
        ("TP=2 x PP=2 x DP=4", 16, 2, 2, 4, 1, 1, "zero1", "mpi"),
        ("1 rank", 1, 1, 1, 1, 2, 4, "allreduce", "mpi"),
    ]
    tok = d + "/tokenizer.bin"
    tt.write_tokenizer(tok)
    for name, np_, tp, pp, dp, M, B, sync, transport in layouts:
        out = d + "/%d_%d_%d_%s_%s_%d" % (tp, pp, dp, sync, transport, M)
        extra = ["--tensor-parallel", str(tp), "--pipeline-parallel", str(pp),
                 "--data-parallel", str(dp), "--micro-batches", str(M), "--sync", sync,
                 "-t", transport, "--save", out + "/final.bin",
                 "--sample-every", "5", "--gen-tokens", "8", "--tokenizer", tok]
        p = run(np_, a.trainer, a.mpirun, base(out, B, extra))
        if not p:
            continue
        check("generated (step 10)" in p.stdout, "%s: no text sample:\n%s" % (name, p.stdout))
        t2, v2 = metrics(out + "/metrics.jsonl")
        compare(name + " vs 1 rank, train", t2, t1)
        compare(name + " vs 1 rank, val", v2, v1)
        check_bytes(name, out, tp, pp, dp, M, B, sync)
        worst = max([abs(t2[s][0] - t1[s][0]) / t1[s][0] for s in t1 if s in t2] +
                    [abs(v2[s][0] - v1[s][0]) / v1[s][0] for s in v1 if s in v2])
        print("%s, %d micro-batch(es): %d steps, train and val losses within %.1e of 1 rank" %
              (name, M, len(t2), worst))
    # the 3D run's final model is the 1-rank run's, in llm.c's format
    mine = d + "/2_2_1_allreduce_mpi_4/final.bin"
    if not os.path.exists(mine):
        return
    tt.check_llmc_model(mine)
    p1, p3 = read_params(ref + "/final.bin"), read_params(mine)
    diff = max(abs(x - y) for x, y in zip(p1, p3))
    check(len(p1) == len(p3) and diff <= 1e-5, "saved TP=2 x PP=2 model differs by %g" % diff)
    print("TP=2 x PP=2 --save = the 1-rank model within %.1e" % diff)
    # the 1-rank trainer evaluates it as the 3D run did at its last step
    again = d + "/reload"
    if run(1, a.trainer, a.mpirun, ["-e", mine] + tt.base_args(train, val, again, 4, steps=1,
                                                               shape=False)):
        _, v = metrics(again + "/metrics.jsonl")
        _, v3 = metrics(d + "/2_2_1_allreduce_mpi_4/metrics.jsonl")
        compare("1 rank from the TP=2 x PP=2 file, val at step 0", {0: v[0]}, {0: v3[STEPS]})
    # and a 3D run starts from the 1-rank file (another layout, same model)
    other = d + "/from_np1"
    if run(4, a.trainer, a.mpirun, ["-e", ref + "/final.bin"] + tt.base_args(
            train, val, other, 4, steps=1, shape=False,
            extra=["--tensor-parallel", "2", "--pipeline-parallel", "2", "--micro-batches", "2"])):
        _, v = metrics(other + "/metrics.jsonl")
        compare("TP=2 x PP=2 from the 1-rank file, val at step 0", {0: v[0]}, {0: v1[STEPS]})


def case_stages(a, d):
    """Four stages of a 4-layer model, so two are middle stages (no wte)."""
    train, val = tt.make_data(d)
    deep = dict(TINY, L=4)
    base = lambda out, B, extra: tt.base_args(train, val, out, B, steps=STEPS,
                                              extra=["--depth", "4"] + extra)
    ref = d + "/np1"
    if not run(1, a.trainer, a.mpirun, base(ref, 4, [])):
        return
    t1, v1 = metrics(ref + "/metrics.jsonl")
    for name, np_, tp, dp, M, B, sync in [("PP=4", 4, 1, 1, 4, 4, "allreduce"),
                                          ("PP=4 x DP=2 zero1", 8, 1, 2, 2, 2, "zero1")]:
        out = d + "/pp4_%d" % dp
        if not run(np_, a.trainer, a.mpirun, base(out, B, [
                "--tensor-parallel", str(tp), "--pipeline-parallel", "4", "--data-parallel",
                str(dp), "--micro-batches", str(M), "--sync", sync])):
            continue
        t2, v2 = metrics(out + "/metrics.jsonl")
        compare(name + " vs 1 rank (L=4), train", t2, t1)
        compare(name + " vs 1 rank (L=4), val", v2, v1)
        check_bytes(name, out, tp, 4, dp, M, B, sync, deep)
        print("%s, %d micro-batches, L=4: %d steps as 1 rank" % (name, M, len(t2)))


def case_resume(a, d):
    train, val = tt.make_data(d)
    ck = ["--shuffle", "--checkpoint-every", "4"]
    args = lambda out, extra: tt.base_args(train, val, out, 4, steps=8, extra=ck + extra)
    ref, mine = d + "/np1", d + "/tp2pp2"
    layout = ["--tensor-parallel", "2", "--pipeline-parallel", "2", "--micro-batches", "2"]
    if not (run(1, a.trainer, a.mpirun, args(ref, [])) and
            run(4, a.trainer, a.mpirun, args(mine, layout))):
        return
    t1, _ = metrics(ref + "/metrics.jsonl")
    t3, _ = metrics(mine + "/metrics.jsonl")
    compare("TP=2 x PP=2 shuffled vs 1 rank", t3, t1)
    tail = {s: t1[s] for s in t1 if s > 4}
    # zero1 over two replicas of a TP=2 model: its checkpoint is the plain trainer's too
    z1 = d + "/tp2dp2_zero1"
    zargs = lambda out, extra: tt.base_args(train, val, out, 2, steps=8, extra=ck + extra)
    if run(4, a.trainer, a.mpirun, zargs(z1, ["--tensor-parallel", "2", "--data-parallel", "2",
                                              "--sync", "zero1"])):
        tz, _ = metrics(z1 + "/metrics.jsonl")
        compare("TP=2 x DP=2 zero1 shuffled vs 1 rank", tz, t1)
    for name, np_, src, extra in [("1 rank from TP=2 x PP=2's step 4", 1, mine, []),
                                  ("PP=2 from 1 rank's step 4", 2, ref,
                                   ["--pipeline-parallel", "2", "--micro-batches", "4"]),
                                  ("2 plain ranks (zero1) from TP=2 x DP=2 zero1's step 4", 2, z1,
                                   ["--sync", "zero1", "-b", "2"])]:
        out = d + "/resumed_%d_%d" % (np_, len(extra))
        got = run(np_, a.trainer, a.mpirun, args(out, extra + [
            "--resume", src + "/step_00000004", "--metrics", out + ".jsonl"]))
        if got:
            t, _ = metrics(out + ".jsonl")
            compare(name, t, tail)
            print("%s: steps %s as the 1-rank run" % (name, sorted(t)))


def case_errors(a, d):
    train, val = tt.make_data(d)
    cases = [  # ranks, flags, the flag the message must name
        (2, ["--tensor-parallel", "3"], "--tensor-parallel 3"),
        (3, ["--tensor-parallel", "3"], "--tensor-parallel 3 must divide the head count"),
        (3, ["--pipeline-parallel", "3"], "--pipeline-parallel 3 must divide the layer count"),
        (2, ["--tensor-parallel", "2", "--data-parallel", "2"], "--data-parallel 2"),
        (2, ["--pipeline-parallel", "2", "--micro-batches", "3"], "--micro-batches 3"),
        (2, ["--tensor-parallel", "2", "--sync", "diloco"], "--sync diloco"),
        (2, ["--pipeline-parallel", "0"], "--pipeline-parallel"),
        (2, ["--tensor-parallel", "2", "-e", d + "/none.bin"], "none.bin"),
    ]
    # a checkpoint of one replica does not resume as two (each reads other rows)
    one = d + "/one"
    if run(1, a.trainer, a.mpirun, tt.base_args(train, val, one, 4, steps=1,
                                                extra=["--checkpoint-every", "1"])):
        cases.append((2, ["--data-parallel", "2", "--resume", one], "--data-parallel 1"))
    for np_, flags, needle in cases:
        args = tt.base_args(train, val, d + "/err", 4, steps=2, extra=flags,
                            shape="-e" not in flags and "--resume" not in flags)
        p, rcs = run_ranks(np_, a.trainer, a.mpirun, args, d)
        name = " ".join(flags) + " on %d ranks" % np_
        if p is None:
            check(False, "%s: timed out (hang)" % name)
            continue
        check(all(rc not in (None, 0) for rc in rcs), "%s: exit codes %s" % (name, rcs))
        check(needle in p.stderr, "%s: message does not name %r:\n%s" % (name, needle, p.stderr))
        print("refused: %s (%s)" % (name, p.stderr.strip().splitlines()[-1][:110]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["layouts", "stages", "resume", "errors"])
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--mpirun", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpt2_parallel_") as d:
        globals()["case_" + a.case](a, d)
    if tt.failures:
        print("%d failures" % len(tt.failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
