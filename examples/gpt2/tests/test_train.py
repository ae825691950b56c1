#!/usr/bin/env python3
"""train_gpt2 end to end under mpirun, on a tiny model and synthetic llm.c shards.

usage: test_train.py CASE --trainer PATH --mpirun PATH [--ref PATH]

CASE is one of
  dp       2 ranks x B rows = 1 rank x 2B rows (no shuffle), losses within 1e-5
           relative, with --sync allreduce and with --sync zero1, on -t mpi and -t shm
  diloco   --sync diloco with H=1, outer lr 1, momentum 0 on 2 ranks = averaging the
           ranks' parameters after every step (a serial reference, --ref)
  resume   stopping after a checkpoint and resuming gives bitwise the losses of the
           uninterrupted run (allreduce, zero1, diloco; shuffled data)
  zero1    --sync zero1 ends with bitwise the parameters and AdamW state of --sync
           allreduce (2 ranks on -t mpi and -t shm, 3 on -t shm, 3 on -t mpi with
           MLCOMM_MPI_RING_BYTES=-1), and a checkpoint of one resumes as the other
           bitwise; on -t mpi with 3 ranks and the ring all-reduce the two collectives
           sum in different orders, so there the difference is bounded
  errors   bad input: a clear message naming the file, non-zero exit on every rank,
           no hang
  smoke    one rank with samples (llm.c tokenizer file), what is printed, the loss plot,
           --save, and training on from that model converted to a bf16 (v5) checkpoint
Runs use -t mpi (every build has it) unless they say otherwise; smoke uses -t auto.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

MPI_ARGS = ["--oversubscribe", "--allow-run-as-root", "--mca", "btl", "^openib"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MLCOMM_TIMEOUT_MS="60000",
           OMPI_MCA_rmaps_base_oversubscribe="1")
# the tiny model every case trains: L=2 C=32 NH=2 maxT=32 V=500 (Vp 512)
SHAPE = ["--depth", "2", "--channels", "32", "--heads", "2", "--seq-len", "32",
         "--vocab", "500"]
V = 500
TIMEOUT = 90
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def write_shard(path, tokens, magic=20240520, version=1, ntok=None):
    ntok = len(tokens) if ntok is None else ntok
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", magic, version, ntok, *([0] * 253)))
        f.write(struct.pack("<%dH" % len(tokens), *tokens))


def make_data(d):
    """A learnable stream (mostly a fixed successor function, some noise)."""
    rng = random.Random(5)

    def stream(n):
        out, t = [], 0
        for _ in range(n):
            t = (t * 17 + 3) % V if rng.random() < 0.8 else rng.randrange(V)
            out.append(t)
        return out

    write_shard(os.path.join(d, "train_00.bin"), stream(6000))
    write_shard(os.path.join(d, "train_01.bin"), stream(5000))
    write_shard(os.path.join(d, "val.bin"), stream(3000))
    return os.path.join(d, "train_*.bin"), os.path.join(d, "val.bin")


def write_tokenizer(path):
    """llm.c tokenizer v2: 256 byte tokens, then two-letter tokens, EOT last."""
    toks = [bytes([b]) for b in range(256)]
    letters = b"etaoinshrdlu"
    for a in letters:
        for b in letters:
            if len(toks) < V - 1:
                toks.append(bytes([a, b]))
    while len(toks) < V - 1:
        toks.append(b"<%d>" % len(toks))
    toks.append(b"<|endoftext|>")
    with open(path, "wb") as f:
        f.write(struct.pack("<256I", 20240328, 2, V, V - 1, *([0] * 252)))
        for t in toks:
            f.write(bytes([len(t)]) + t)


def run(np_, trainer, mpirun, args, expect_ok=True, env=None):
    cmd = [mpirun] + MPI_ARGS + ["-np", str(np_), trainer] + args
    try:
        p = subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        check(False, "timed out (hang?): " + " ".join(cmd))
        return None
    if expect_ok and p.returncode != 0:
        check(False, "exit %d: %s\n%s\n%s" % (p.returncode, " ".join(cmd), p.stdout[-3000:],
                                              p.stderr[-3000:]))
        return None
    return p


def metrics(path):
    train, val = {}, {}
    with open(path) as f:
        for line in f:
            raw = json.loads(line)
            # the exact text of the number, to compare bit for bit
            text = {k: v for k, v in (kv.split(": ") for kv in
                                      line.strip()[1:-1].replace('"', "").split(", "))}
            if "train_loss" in raw:
                train[raw["step"]] = (raw["train_loss"], text["train_loss"])
            if "val_loss" in raw:
                val[raw["step"]] = (raw["val_loss"], text["val_loss"])
    return train, val


def base_args(train, val, out, B, steps=6, extra=(), shape=True):
    return (["-i", train, "-j", val, "-b", str(B), "-T", "16", "-n", str(steps),
             "--val-every", "3", "--val-batches", "2", "--sample-every", "0",
             "-t", "mpi", "-o", out, "--plot", "none", "--lr", "1e-3"] +
            (SHAPE if shape else []) + list(extra))


def close(a, b, rel=1e-5):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def compare(name, got, want, rel=1e-5):
    check(sorted(got) == sorted(want), "%s: steps %s vs %s" % (name, sorted(got), sorted(want)))
    for s in sorted(set(got) & set(want)):
        check(close(got[s][0], want[s][0], rel),
              "%s step %d: %.9g vs %.9g" % (name, s, got[s][0], want[s][0]))


def case_dp(a, d):
    train, val = make_data(d)
    ref = run(1, a.trainer, a.mpirun, base_args(train, val, d + "/np1", 4))
    if ref is None:
        return
    t1, v1 = metrics(d + "/np1/metrics.jsonl")
    check(len(t1) == 6 and t1[6][0] < t1[1][0], "the reference run trains: %s" % t1)
    for sync, transport in [("allreduce", "mpi"), ("zero1", "mpi"), ("allreduce", "shm"),
                            ("zero1", "shm")]:
        out = d + "/np2_%s_%s" % (sync, transport)
        args = base_args(train, val, out, 2, extra=["--sync", sync])
        args[args.index("-t") + 1] = transport
        if run(2, a.trainer, a.mpirun, args):
            t2, v2 = metrics(out + "/metrics.jsonl")
            name = "2 ranks --sync %s -t %s vs 1 rank" % (sync, transport)
            compare(name + ", train", t2, t1)
            compare(name + ", val", v2, v1)
            print("2 ranks x B=2 --sync %s -t %s = 1 rank x B=4: %d steps" %
                  (sync, transport, len(t2)))


def case_diloco(a, d):
    train, val = make_data(d)
    out = d + "/diloco"
    if not run(2, a.trainer, a.mpirun,
               base_args(train, val, out, 2, extra=["--sync", "diloco", "--inner-steps", "1",
                                                    "--outer-lr", "1", "--outer-momentum", "0"])):
        return
    got, _ = metrics(out + "/metrics.jsonl")
    p = subprocess.run([a.ref, train, "2", "2", "16", "6", "1e-3", "2", "32", "2", "32", str(V),
                        "1337"], capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT)
    check(p.returncode == 0, "reference failed: " + p.stderr)
    want = {i + 1: (float(x), x) for i, x in enumerate(p.stdout.split())}
    compare("diloco H=1 vs parameter averaging", got, want)
    print("diloco H=1, outer lr 1, momentum 0 = averaging after every step: %d steps" % len(got))
    # and real DiLoCo settings run and learn
    out = d + "/diloco_h3"
    if run(2, a.trainer, a.mpirun,
           base_args(train, val, out, 2, steps=9, extra=["--sync", "diloco", "--inner-steps", "3"])):
        t, _ = metrics(out + "/metrics.jsonl")
        check(t[9][0] < t[1][0], "diloco H=3 learns: %s" % t)


def check_llmc_model(path):
    with open(path, "rb") as f:
        h = struct.unpack("<8i", f.read(32))
    check(h[:2] == (20240326, 3) and h[2:7] == (32, V, 2, 2, 32) and h[7] == 512,
          "%s: llm.c header %s" % (path, h))
    check(os.path.getsize(path) == 1024 + 4 * params_count(), "%s: size" % path)


def params_count(L=2, C=32, maxT=32, Vp=512):
    return Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C


def case_resume(a, d):
    train, val = make_data(d)
    for sync, extra in [("allreduce", []), ("zero1", []), ("diloco", ["--inner-steps", "2"])]:
        common = ["--shuffle", "--checkpoint-every", "4", "--sync", sync] + extra
        full, part = d + "/full_" + sync, d + "/part_" + sync
        if not run(2, a.trainer, a.mpirun, base_args(train, val, full, 2, steps=8, extra=common)):
            continue
        if not run(2, a.trainer, a.mpirun, base_args(train, val, part, 2, steps=4, extra=common)):
            continue
        check(open(part + "/latest").read().strip() == "step_00000004", "latest names step 4")
        check_llmc_model(part + "/step_00000004/model.bin")
        if not run(2, a.trainer, a.mpirun,
                   base_args(train, val, part, 2, steps=8, extra=common + ["--resume", part])):
            continue
        tf, vf = metrics(full + "/metrics.jsonl")
        tp, vp = metrics(part + "/metrics.jsonl")  # both runs appended here
        check(sorted(tp) == list(range(1, 9)), "%s: resumed steps %s" % (sync, sorted(tp)))
        for s in range(1, 9):
            if s in tp and s in tf:
                check(tp[s][1] == tf[s][1], "%s step %d: resumed %s, uninterrupted %s" %
                      (sync, s, tp[s][1], tf[s][1]))
        for s in vf:
            check(s in vp and vp[s][1] == vf[s][1], "%s val at %d: %s vs %s" %
                  (sync, s, vp.get(s), vf[s]))
        print("--sync %s: resumed at step 4, steps 5-8 bitwise equal" % sync)


# L=1 C=24: 20,328 parameters, not a multiple of 16 floats, so allreduce mode's AdamW
# ends in a partial AVX-512 vector, and zero1's shards (multiples of 16) cut wte's rows
ZERO1_SHAPE = ["--depth", "1", "--channels", "24", "--heads", "2", "--seq-len", "32",
               "--vocab", "500"]


def final_state(out, steps):
    """model.bin and optimizer.bin of the checkpoint at the end: every parameter, m, v."""
    step_dir = "%s/step_%08d" % (out, steps)
    with open(step_dir + "/model.bin", "rb") as f:
        model = f.read()
    with open(step_dir + "/optimizer.bin", "rb") as f:
        opt = f.read()
    return model, opt


def floats(blob, skip):
    return struct.unpack("<%df" % ((len(blob) - skip) // 4), blob[skip:])


def case_zero1(a, d):
    train, val = make_data(d)
    steps = 5

    def go(np_, sync, transport, out, n=steps, extra=(), env=None):
        args = base_args(train, val, out, 2, steps=n, shape=False,
                         extra=ZERO1_SHAPE + ["--shuffle", "--sync", sync, "--checkpoint-every",
                                              str(n)] + list(extra))
        args[args.index("-t") + 1] = transport
        return run(np_, a.trainer, a.mpirun, args, env=env)

    # libnbc's default all-reduce sums in the order its reduce-scatter does; the ring
    # that mlcomm asks for from 4 KiB does not
    no_ring = dict(ENV, MLCOMM_MPI_RING_BYTES="-1")
    for np_, transport, env in [(2, "mpi", None), (2, "shm", None), (3, "shm", None),
                                (3, "mpi", no_ring), (3, "mpi", None)]:
        outs = {}
        for sync in ["allreduce", "zero1"]:
            out = d + "/%s_%d_%s%s" % (sync, np_, transport, "_noring" if env else "")
            if go(np_, sync, transport, out, env=env):
                outs[sync] = final_state(out, steps)
        if len(outs) < 2:
            continue
        (ma, oa), (mz, oz) = outs["allreduce"], outs["zero1"]
        check(len(ma) == len(mz) and len(oa) == len(oz), "%d ranks -t %s: file sizes" %
              (np_, transport))
        name = "%d ranks -t %s%s, %d steps" % (np_, transport,
                                              " MLCOMM_MPI_RING_BYTES=-1" if env else "", steps)
        pa, pz = floats(ma, 1024), floats(mz, 1024)
        if (np_, transport) != (3, "mpi") or env:
            # which parameters differ (wte comes first, then wpe, then the layer)
            diff = [i for i in range(len(pa)) if ma[1024 + 4 * i:1028 + 4 * i] !=
                    mz[1024 + 4 * i:1028 + 4 * i]]
            check(not diff, "%s: zero1 and allreduce parameters differ at %d of %d (first: "
                  "index %s)" % (name, len(diff), len(pa), diff[:1]))
            check(oa == oz, "%s: zero1 and allreduce AdamW state differ" % name)
            if not diff and oa == oz:
                print("%s: zero1 = allreduce bit for bit (parameters and AdamW state)" % name)
        else:
            worst = max(abs(x - y) for x, y in zip(pa, pz))
            # lr 1e-3 moves a parameter by about 1e-3 a step; rounding in another
            # summation order moves it by far less (measured 1e-6 in 5 steps)
            check(worst <= 2e-5, "%s: zero1 and allreduce parameters %.3g apart" % (name, worst))
            print("%s: zero1 and allreduce parameters %.3g apart at most (MPI's orders differ)"
                  % (name, worst))

    # each mode resumes the other's checkpoint and still ends where allreduce ends
    part = d + "/part"
    if go(2, "zero1", "shm", part, n=3) and go(2, "allreduce", "shm", part,
                                                extra=["--resume", part]):
        full = final_state(d + "/allreduce_2_shm", steps)
        same = final_state(part, steps) == full
        check(same, "zero1 checkpoint at step 3 resumed as allreduce: not bitwise the "
              "uninterrupted allreduce run")
        if same:
            print("zero1 checkpoint resumed as allreduce: bitwise the uninterrupted run")


def run_ranks(np_, trainer, mpirun, args, d):
    """Runs np_ ranks, each under a shell that records its exit status."""
    rcdir = tempfile.mkdtemp(dir=d)
    script = 'rc=0; "$0" "$@" || rc=$?; echo $rc > %s/rc.$OMPI_COMM_WORLD_RANK' % rcdir
    cmd = [mpirun] + MPI_ARGS + ["-np", str(np_), "/bin/sh", "-c", script, trainer] + args
    try:
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, None
    rcs = []
    for r in range(np_):
        try:
            rcs.append(int(open("%s/rc.%d" % (rcdir, r)).read()))
        except OSError:
            rcs.append(None)
    return p, rcs


def case_errors(a, d):
    train, val = make_data(d)
    bad_magic = d + "/bad_magic.bin"
    write_shard(bad_magic, [1] * 3000, magic=12345)
    short = d + "/short.bin"
    write_shard(short, [1] * 40)  # < one batch of 2 x 16 x 2 ranks
    big_tok = d + "/big_token.bin"
    write_shard(big_tok, [V + 7] * 3000)
    bad_ckpt = d + "/bad_ckpt.bin"
    with open(bad_ckpt, "wb") as f:
        f.write(struct.pack("<256i", 20240326, 4, 32, V, 2, 2, 32, 512, *([0] * 248)))
    trunc_ckpt = d + "/trunc_ckpt.bin"
    with open(trunc_ckpt, "wb") as f:
        f.write(struct.pack("<256i", 20240326, 3, 32, V, 2, 2, 32, 512, *([0] * 248)))
        f.write(b"\0" * 1000)
    missing = d + "/no_such_shard.bin"
    shape = SHAPE
    cases = [
        ("missing train shard", ["-i", missing], missing),
        ("bad shard magic", ["-i", bad_magic], "bad_magic.bin"),
        ("shard shorter than a batch", ["-i", short], "short.bin"),
        ("token outside the vocabulary", ["-i", big_tok], "big_token.bin"),
        ("checkpoint version", ["-e", bad_ckpt], "bad_ckpt.bin"),
        ("truncated checkpoint", ["-e", trunc_ckpt], "trunc_ckpt.bin"),
        ("missing checkpoint", ["-e", d + "/none.bin"], "none.bin"),
        ("T > maxT", ["-T", "64"], "maxT"),
        ("resume without checkpoint", ["--resume", d + "/nothing"], "nothing"),
        ("bad option", ["--sync", "ring"], "--sync"),
    ]
    for name, override, needle in cases:
        args = ["-i", train, "-j", val, "-b", "2", "-T", "16", "-n", "3", "--sample-every", "0",
                "-t", "mpi", "-o", d + "/err_out", "--plot", "none"]
        if override[0] != "-e":
            args += shape
        args += override
        p, rcs = run_ranks(2, a.trainer, a.mpirun, args, d)
        if p is None:
            check(False, "%s: timed out (hang)" % name)
            continue
        check(all(rc not in (None, 0) for rc in rcs), "%s: exit codes %s" % (name, rcs))
        check(needle in p.stderr, "%s: message does not name %r:\n%s" % (name, needle, p.stderr))
        first = [l for l in p.stderr.splitlines() if "train_gpt2" in l]
        print("%-30s ranks exit %s: %s" % (name, rcs, first[0] if first else p.stderr.strip()))


def case_smoke(a, d):
    train, val = make_data(d)
    tok = d + "/tok.bin"
    write_tokenizer(tok)
    out = d + "/smoke"
    args = base_args(train, val, out, 4, steps=4)
    args[args.index("--sample-every") + 1] = "2"
    args[args.index("--plot") + 1] = out + "/loss.png"
    args[args.index("-t") + 1] = "auto"
    args += ["--tokenizer", tok, "--gen-tokens", "12", "--save", out + "/final.bin"]
    p = run(1, a.trainer, a.mpirun, args)
    if p is None:
        return
    print(p.stdout)
    for needle in ["parameters", "tokens per step", "step     4/4", "tok/s", "comm", "eta",
                   "val loss", "generated (step 2)", "generated (step 4)"]:
        check(needle in p.stdout, "smoke: output lacks %r" % needle)
    have_mpl = subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"],
                              capture_output=True).returncode == 0
    if have_mpl:
        check(os.path.exists(out + "/loss.png"), "smoke: no loss plot")
    # the saved model, as llm.c's bf16 version 5, starts another run
    check_llmc_model(out + "/final.bin")
    with open(out + "/final.bin", "rb") as f:
        header, body = bytearray(f.read(1024)), f.read()
    struct.pack_into("<i", header, 4, 5)
    words = struct.unpack("<%dI" % (len(body) // 4), body)
    bf16 = [((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF for u in words]
    with open(out + "/final_bf16.bin", "wb") as f:
        f.write(bytes(header) + struct.pack("<%dH" % len(bf16), *bf16))
    args2 = ["-e", out + "/final_bf16.bin"] + base_args(train, val, out + "2", 4, 2, shape=False)
    p = run(1, a.trainer, a.mpirun, args2)
    if p:
        check("final_bf16.bin" in p.stdout and "step     2/2" in p.stdout,
              "smoke: training from a bf16 checkpoint:\n" + p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["dp", "zero1", "diloco", "resume", "errors", "smoke"])
    ap.add_argument("--trainer", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--ref")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gpt2_train_") as d:
        globals()["case_" + a.case](a, d)
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
