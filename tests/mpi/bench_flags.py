#!/usr/bin/python3
"""The benchmarks' command line, end to end: each case runs bench binaries under mpirun
and checks what the flags did (the rows of the table and of the --json file, the exit
code, the sentence of a refusal).

    bench_flags.py CASE BENCHDIR MPIRUN [MPIRUN ARGS...]

Exit code 0 when the case held, 1 with the reason otherwise.
"""
import json
import os
import subprocess
import sys
import tempfile

CASE, BENCHDIR, MPIRUN = sys.argv[1], sys.argv[2], sys.argv[3:]
QUICK = ["-n", "2", "-w", "1"]
ALL_TYPES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "half", "float",
             "double", "bfloat16"]
ALL_OPS = ["sum", "prod", "max", "min", "avg"]


class Failed(Exception):
    pass


def expect(cond, what, run=None):
    if not cond:
        detail = ""
        if run is not None:
            detail = "\n--- command: %s\n--- stdout:\n%s\n--- stderr:\n%s" % (
                " ".join(run.args), run.stdout, run.stderr)
        raise Failed(what + detail)


def bench(name, *flags, np=2):
    cmd = MPIRUN + ["-np", str(np), os.path.join(BENCHDIR, name)] + list(flags)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


def with_json(name, *flags, np=2):
    """Runs with -J FILE; returns (run, parsed JSON or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.json")
        run = bench(name, *flags, "-J", path, np=np)
        doc = None
        if os.path.exists(path) and os.path.getsize(path):
            with open(path) as f:
                doc = json.load(f)
        return run, doc


def rows(run):
    """The table's data lines: (size, count, type, redop, root) of each."""
    out = []
    for line in run.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = line.split()
        out.append((int(f[0]), int(f[1]), f[2], f[3], int(f[4])))
    return out


def ok(run, what):
    expect(run.returncode == 0, "%s: exit code %d, expected 0" % (what, run.returncode), run)
    expect("# Out of bounds values : 0 OK" in run.stdout, what + ": no '0 OK' footer", run)


def refused(run, sentence, what):
    expect(run.returncode == 2, "%s: exit code %d, expected 2" % (what, run.returncode), run)
    expect(sentence in run.stderr, "%s: stderr lacks %r" % (what, sentence), run)
    expect("OK" not in run.stdout, what + ": printed a result", run)


# ---------------------------------------------------------------- the cases

def case_datatype_all():
    run, doc = with_json("allreduce_bw", "-d", "all", "-b", "64", "-e", "64", *QUICK)
    ok(run, "-d all")
    expect([r[2] for r in rows(run)] == ALL_TYPES, "-d all: table types %s" % rows(run), run)
    expect(run.stdout.count("#       size") == len(ALL_TYPES), "-d all: one section per type",
           run)
    expect([r["type"] for r in doc["rows"]] == ALL_TYPES and doc["type"] == "all",
           "-d all: JSON rows %s" % doc["rows"])


def case_op_all():
    run = bench("reduce_bw", "-o", "all", "-d", "int32", "-b", "1K", "-e", "1K", *QUICK)
    ok(run, "-o all")
    expect([r[3] for r in rows(run)] == ALL_OPS, "-o all: table ops %s" % rows(run), run)
    # a collective without an op has one section however many ops are asked for
    run = bench("broadcast_bw", "-o", "all", "-b", "1K", "-e", "1K", *QUICK)
    ok(run, "broadcast -o all")
    expect([r[3] for r in rows(run)] == ["none"], "broadcast -o all: %s" % rows(run), run)


def case_root_all():
    run = bench("broadcast_bw", "-r", "all", "-b", "4K", "-e", "4K", *QUICK, np=3)
    ok(run, "-r all")
    expect([r[4] for r in rows(run)] == [0, 1, 2], "-r all: roots %s" % rows(run), run)


def case_empty_sweep():
    run = bench("allgather_bw", "-b", "1", "-e", "4", "-d", "double", *QUICK)
    refused(run, "holds no size to measure for double", "allgather -b 1 -e 4")
    run = bench("allreduce_bw", "-b", "64M", "-e", "8", *QUICK)
    refused(run, "the smallest size must not exceed the largest", "-b 64M -e 8")
    # one type of -d all with no size refuses the whole run, before anything runs
    run = bench("allreduce_bw", "-d", "all", "-b", "1", "-e", "4", *QUICK)
    refused(run, "holds no size to measure for int64", "-d all -b 1 -e 4")


def case_threads_gpus():
    refused(bench("allreduce_bw", "-t", "2"), "mlcomm runs one thread per rank", "-t 2")
    refused(bench("allreduce_bw", "-g", "2"), "mlcomm drives one GPU per rank", "-g 2")
    refused(bench("allreduce_bw", "-t", "shm"), "the transport is --transport", "-t shm")
    ok(bench("allreduce_bw", "-t", "1", "-g", "1", "-p", "1", "-b", "8", "-e", "8", *QUICK),
       "-t 1 -g 1 -p 1")


def case_stepbytes():
    run = bench("allreduce_bw", "-b", "1K", "-e", "5K", "-i", "1K", *QUICK)
    ok(run, "-i 1K")
    expect([r[0] for r in rows(run)] == [1024, 2048, 3072, 4096, 5120],
           "-i 1K: sizes %s" % rows(run), run)
    # -f 1 steps by -i's default, 1 MiB; a size of 0 is skipped
    run = bench("allreduce_bw", "-b", "0", "-e", "2M", "-f", "1", *QUICK)
    ok(run, "-f 1")
    expect([r[0] for r in rows(run)] == [1 << 20, 2 << 20], "-f 1: sizes %s" % rows(run), run)
    # linear steps are rounded to whole blocks like any size (allgather: nranks x 4 B)
    run = bench("allgather_bw", "-b", "4", "-e", "40", "-i", "12", *QUICK)
    ok(run, "allgather -i 12")
    expect([r[0] for r in rows(run)] == [16, 24, 40], "allgather -i 12: %s" % rows(run), run)
    refused(bench("allreduce_bw", "-i", "1K", "-f", "4"), "both set the step", "-i with -f 4")
    refused(bench("allreduce_bw", "-i", "--in-place"), "in place is --in-place", "old -i")


def case_average():
    for flag, pick in (("0", lambda t: t[0]), ("1", lambda t: sum(t) / len(t)),
                       ("2", min), ("3", max)):
        run, doc = with_json("sendrecv_bw", "-a", flag, "-b", "64K", "-e", "256K", "-f", "4",
                             *QUICK)
        ok(run, "-a " + flag)
        expect(doc["average"] == ["rank0", "mean", "min", "max"][int(flag)],
               "-a %s: JSON average %r" % (flag, doc["average"]))
        for row in doc["rows"]:
            want = pick(row["rank_us"])
            expect(len(row["rank_us"]) == 2 and abs(row["time_us"] - want) < 0.01,
                   "-a %s: time_us %s from rank_us %s" % (flag, row["time_us"],
                                                          row["rank_us"]))
    # -a used to be --async, which took no value
    refused(bench("allreduce_bw", "-a", "-i", "1K"), "the ...Async forms are -z 0", "old -a")


def case_agg_blocking():
    for name in ("allreduce_bw", "sendrecv_bw", "reduce_scatter_bw", "broadcast_bw"):
        for z in ("0", "1"):
            run, doc = with_json(name, "-m", "3", "-z", z, "--vs-mpi", "-b", "1K", "-e", "64K",
                                 "-f", "8", "-c", "2", *QUICK)
            ok(run, "%s -m 3 -z %s" % (name, z))
            expect(doc["agg_iters"] == 3 and doc["blocking"] == int(z) and
                   doc["async"] == 1 - int(z), "%s -m 3 -z %s: JSON %s" % (name, z, doc))
            expect(("blocking 0" in run.stdout) == (z == "0") and "agg_iters 3" in run.stdout,
                   "%s: header" % name, run)
    # aggregated calls in place on the shm transport, each on its own slice
    ok(bench("allgather_bw", "--transport", "shm", "-m", "4", "--in-place", "-z", "0", "-b",
             "8", "-e", "1M", "-f", "16", *QUICK), "allgather -m 4 --in-place")
    # --async is -z 0
    run, doc = with_json("allreduce_bw", "--async", "-b", "8", "-e", "8", *QUICK)
    ok(run, "--async")
    expect(doc["blocking"] == 0, "--async: JSON blocking %r" % doc["blocking"])
    refused(bench("allreduce_bw", "-m", "alloc"), "the buffer kind is --memory", "old -m")
    refused(bench("allreduce_bw", "-m", "0"), "not a valid aggregation count", "-m 0")


def case_cputime_timeout_cycles():
    run, doc = with_json("allreduce_bw", "-C", "1", "-z", "0", "-T", "7", "-N", "2", "-b", "1K",
                         "-e", "4K", *QUICK)
    ok(run, "-C 1 -T 7 -N 2")
    expect(doc["report_cputime"] == 1 and doc["timeout_ms"] == 7000 and doc["run_cycles"] == 2,
           "JSON %s" % {k: v for k, v in doc.items() if k != "rows"})
    expect([r["size"] for r in doc["rows"]] == [1024, 2048, 4096] * 2, "-N 2: %s" % doc["rows"])
    expect("cycle 2" in run.stdout and "cputime 1" in run.stdout, "-N 2 -C 1: header", run)
    refused(bench("allreduce_bw", "-N", "0"), "always ends", "-N 0")
    refused(bench("allreduce_bw", "-T", "x"), "not a valid timeout", "-T x")


def case_check_count():
    run = bench("allreduce_bw", "-c", "3", "-b", "1K", "-e", "1K", *QUICK)
    ok(run, "-c 3")
    run = bench("allreduce_bw", "-c", "0", "-b", "1K", "-e", "1K", *QUICK)
    expect(run.returncode == 0 and " N/A" in run.stdout, "-c 0: #wrong N/A", run)


def case_refused_nccl_flags():
    for flag, value, sentence in (("-G", "1", "CUDA graph"), ("-y", "0", "default stream"),
                                  ("-R", "1", "no buffer registration"),
                                  ("-x", "0", "CTA policy"), ("-D", "1", "device API"),
                                  ("-V", "16", "device API"), ("-M", "1", "memory use"),
                                  ("-S", "1", "timestamp")):
        refused(bench("allreduce_bw", flag, value), sentence, flag + " " + value)
    ok(bench("allreduce_bw", "-G", "0", "-y", "1", "-R", "0", "-D", "0", "-M", "0", "-S", "0",
             "-b", "8", "-e", "8", *QUICK), "nccl-tests' defaults")


def case_own_long_flags():
    # the README's first command, and mlcomm's own options under their long names
    ok(bench("allreduce_bw", "--vs-mpi", "-e", "64K", *QUICK), "--vs-mpi")
    run, doc = with_json("broadcast_bw", "--transport", "mpi", "--memory", "alloc",
                         "--in-place", "-b", "1K", "-e", "1K", *QUICK)
    ok(run, "--transport --memory --in-place")
    expect(doc["transport"] == "mpi" and doc["memory"] == "alloc" and doc["in_place"],
           "JSON %s" % {k: v for k, v in doc.items() if k != "rows"})
    refused(bench("sendrecv_bw", "--in-place"), "has no in-place form", "sendrecv --in-place")
    refused(bench("allreduce_bw", "--transport", "foo"), "allowed: auto mpi shm nccl",
            "--transport foo")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}

if __name__ == "__main__":
    if CASE not in CASES:
        print("bench_flags.py: unknown case %r; cases: %s" % (CASE, " ".join(sorted(CASES))),
              file=sys.stderr)
        sys.exit(2)
    try:
        CASES[CASE]()
    except Failed as e:
        print("FAILED: " + str(e), file=sys.stderr)
        sys.exit(1)
    print("ok: " + CASE)
