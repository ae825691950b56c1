#!/usr/bin/python3
"""Turns bench/peers.sh's raw/ directory into its table, Markdown, JSON and plot.

OUTDIR/raw holds, per column and round R:
  mlcomm-<t>_rR.json             an mlcomm benchmark's --json file (busbw; the
                                 mlcomm-auto run's mpi_busbw is the openmpi column;
                                 bound_busbw and mem_bw where it ran with --bound)
  openmpi-c_rR.txt, mpich_rR.txt, gloo_rR.txt
                                 mpi_coll_bw / gloo_bw.py lines:
                                 size count time_us algbw busbw wrong
  status                         COLUMN ROUND ok|failed|not-supported|not-installed
  absent                         COLUMN REASON, for each column not installed

Writes OUTDIR/peers.txt (the table), peers.md (the same in Markdown), peers.json (every
round's busbw per column and size, the medians, spreads and ratios, the bound) and
peers.png (median busbw against size per column with its min-max band, and the memory
bound of the best round as a dashed line; linear and log busbw side by side).

Each cell is the median busbw (GB/s) over the rounds that ran, with the min-max spread;
the bound is the best round's (other load only lowers it); each ratio is the median over
rounds of mlcomm-auto's busbw divided by the peer's in the
same round (above 1: mlcomm is faster). Exit code 0, or 1 when a file cannot be read or
the PNG cannot be written.
"""

import argparse
import json
import os
import statistics
import sys

PEERS = ("openmpi", "openmpi-c", "mpich", "gloo")
WHAT = {
    "mlcomm-auto": "mlcomm, transport auto",
    "mlcomm-shm": "mlcomm, transport shm",
    "mlcomm-mpi": "mlcomm, transport mpi",
    "openmpi": "Open MPI (the bench's --vs-mpi reference)",
    "openmpi-c": "Open MPI (mpi_coll_bw)",
    "mpich": "MPICH (mpi_coll_bw)",
    "gloo": "Gloo (torch.distributed)",
}
STATUS_TEXT = {"not-installed": "not installed", "not-supported": "not supported",
               "failed": "failed"}


def fmt(v):
    """Three significant digits, never in exponent form, so that a reader (and the test)
    sees every figure as a plain positive number."""
    if v <= 0:
        return "%.2f" % v
    digits = 2
    x = v
    while x < 1 and digits < 9:
        x *= 10
        digits += 1
    if v >= 10:
        digits = 1 if v < 100 else 0
    return "%.*f" % (digits, v)


def ratio_text(r):
    """Two decimals where they mean something, whole numbers for ratios in the hundreds."""
    return "%.2f" % r if r < 10 else "%.1f" % r if r < 100 else "%.0f" % r


def read_lines(path):
    """{size: busbw} and the library line of an mpi_coll_bw / gloo_bw.py output."""
    rows, library = {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("# library "):
                library = " ".join(line[len("# library "):].split())
            if line.startswith("#") or not line.strip():
                continue
            size, _count, _us, _algbw, busbw, _wrong = line.split()
            rows[int(size)] = float(busbw)
    return rows, library


def load(outdir, columns, rounds):
    raw = os.path.join(outdir, "raw")
    status = {}  # (column, round) -> status
    with open(os.path.join(raw, "status")) as f:
        for line in f:
            col, r, st = line.split()
            status[(col, int(r))] = st
    reasons = {}
    path = os.path.join(raw, "absent")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                col, _, reason = line.strip().partition(" ")
                reasons[col] = reason
    data = {c: {"rounds": {}, "status": "ok", "library": None} for c in columns}
    bound = []  # (bound_busbw, mem_bw) per round
    for col in columns:
        d = data[col]
        if status.get((col, 0)) == "not-installed":
            d["status"] = "not-installed"
            d["reason"] = reasons.get(col, "")
            continue
        states = [status.get((col, r)) for r in range(1, rounds + 1)]
        if "not-supported" in states:
            d["status"] = "not-supported"
            continue
        if all(s != "ok" for s in states):
            d["status"] = "failed"
            continue
        if any(s != "ok" for s in states):
            d["status"] = "ok, failed in some rounds"
        for r in range(1, rounds + 1):
            if status.get((col, r)) != "ok":
                continue
            if col.startswith("mlcomm-") or col == "openmpi":
                name = "mlcomm-auto" if col == "openmpi" else col
                with open(os.path.join(raw, "%s_r%d.json" % (name, r))) as f:
                    run = json.load(f)
                key = "mpi_busbw" if col == "openmpi" else "busbw"
                d["rounds"][r] = {row["size"]: row[key] for row in run["rows"]
                                  if row.get(key) is not None}
                d["library"] = ("mlcomm %s" % run.get("version") if col != "openmpi"
                                else "the MPI mlcomm is built with")
                if col != "openmpi" and run.get("bound_busbw"):
                    bound.append((run["bound_busbw"], run["mem_bw"]))
            else:
                rows, library = read_lines(os.path.join(raw, "%s_r%d.txt" % (col, r)))
                d["rounds"][r] = rows
                d["library"] = library
    return data, bound


def summarise(data, columns):
    sizes = sorted({s for c in columns for rr in data[c]["rounds"].values() for s in rr})
    cells = {}
    for col in columns:
        for s in sizes:
            vals = [rr[s] for rr in data[col]["rounds"].values() if s in rr]
            if vals:
                cells[(col, s)] = {"median": statistics.median(vals), "min": min(vals),
                                   "max": max(vals), "n": len(vals)}
    ratios = {}
    if "mlcomm-auto" in columns:
        mine = data["mlcomm-auto"]["rounds"]
        for peer in [c for c in columns if c in PEERS]:
            theirs = data[peer]["rounds"]
            for s in sizes:
                per_round = [mine[r][s] / theirs[r][s] for r in mine
                             if r in theirs and s in mine[r] and s in theirs[r]
                             and theirs[r][s] > 0]
                if per_round:
                    ratios[(peer, s)] = statistics.median(per_round)
    return sizes, cells, ratios


def cell_text(data, cells, col, s):
    c = cells.get((col, s))
    if c is None:
        st = data[col]["status"]
        return STATUS_TEXT.get(st, "-")
    if c["n"] == 1:
        return fmt(c["median"])
    return "%s (%s-%s)" % (fmt(c["median"]), fmt(c["min"]), fmt(c["max"]))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("--coll", required=True)
    p.add_argument("--nranks", type=int, required=True)
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--iters", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--columns", required=True, help="comma-separated, in table order")
    args = p.parse_args()
    columns = args.columns.split(",")
    try:
        data, bound = load(args.outdir, columns, args.rounds)
    except (OSError, ValueError, KeyError) as e:
        sys.exit("peers_table.py: cannot read %s/raw: %s" % (args.outdir, e))
    sizes, cells, ratios = summarise(data, columns)
    ratio_cols = [c for c in columns if c in PEERS] if "mlcomm-auto" in columns else []

    what = "%s, float32%s, %d ranks, host memory" % (
        args.coll, " sum" if args.coll in ("allreduce", "reduce", "reduce_scatter") else "",
        args.nranks)
    head = ["peers.sh: %s; %d round(s), each peer once per round, %d timed calls per "
            "size after %d warm-up" % (what, args.rounds, args.iters, args.warmup),
            "busbw in GB/s: median over rounds (min-max); ratio: median over rounds of "
            "mlcomm-auto / peer busbw, above 1 means mlcomm is faster"]
    bound_best = None
    if bound:
        # the best round's: load from other jobs only ever lowers the measured bandwidth
        bound_best = max(b for b, _ in bound)
        mems = [m for _, m in bound]
        head.append("memory bound: busbw <= %s GB/s (the bench's --bound: memory bandwidth "
                    "%s GB/s, the best of %d round(s); lowest %s)"
                    % (fmt(bound_best), fmt(max(mems)), len(mems), fmt(min(mems))))
    for col in columns:
        d = data[col]
        line = "%-11s %s" % (col, WHAT[col])
        if d["library"]:
            line += ": " + d["library"]
        if d["status"] != "ok":
            line += " [%s%s]" % (STATUS_TEXT.get(d["status"], d["status"]),
                                 ": " + d["reason"] if d.get("reason") else "")
        head.append(line)

    header = ["size (B)"] + columns + ["auto/%s" % c for c in ratio_cols]
    rows = []
    for s in sizes:
        row = [str(s)] + [cell_text(data, cells, c, s) for c in columns]
        for c in ratio_cols:
            r = ratios.get((c, s))
            row.append(ratio_text(r) if r is not None
                       else STATUS_TEXT.get(data[c]["status"], "-"))
        rows.append(row)
    if not sizes:  # nothing ran: one line still names every column's state
        rows.append(["-"] + [STATUS_TEXT.get(data[c]["status"], "-") for c in columns] +
                    ["-" for _ in ratio_cols])
    widths = [max(len(r[k]) for r in [header] + rows) for k in range(len(header))]
    text = ["# " + h for h in head]
    text.append("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    text += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(r) + " |" for r in rows]

    try:
        with open(os.path.join(args.outdir, "peers.txt"), "w") as f:
            f.write("\n".join(text) + "\n")
        with open(os.path.join(args.outdir, "peers.md"), "w") as f:
            f.write("\n".join(["<!-- " + h + " -->" for h in head] + md) + "\n")
        out = {
            "coll": args.coll, "nranks": args.nranks, "rounds": args.rounds,
            "iters": args.iters, "warmup": args.warmup, "columns": columns,
            "bound_busbw": bound_best, "bound_rounds": [b for b, _ in bound],
            "mem_bw_rounds": [m for _, m in bound],
            "peers": {c: {"what": WHAT[c], "status": data[c]["status"],
                          "reason": data[c].get("reason"), "library": data[c]["library"],
                          "busbw_rounds": {str(r): {str(s): v for s, v in rr.items()}
                                           for r, rr in data[c]["rounds"].items()}}
                      for c in columns},
            "rows": [{"size": s,
                      "busbw": {c: cells.get((c, s)) for c in columns},
                      "ratio": {c: ratios.get((c, s)) for c in ratio_cols}} for s in sizes],
        }
        with open(os.path.join(args.outdir, "peers.json"), "w") as f:
            json.dump(out, f, indent=1)
    except OSError as e:
        sys.exit("peers_table.py: %s" % e)
    print("\n".join(text))
    return plot(args, what, data, columns, sizes, cells, bound_best, bound)


def plot(args, what, data, columns, sizes, cells, bound_best, bound):
    png = os.path.join(args.outdir, "peers.png")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        print("peers_table.py: no plot: needs matplotlib (apt-get install "
              "python3-matplotlib; run with /usr/bin/python3)", file=sys.stderr)
        return 1

    def size_label(b):
        for suffix, mul in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
            if b >= mul and b % mul == 0:
                return "%d%s" % (b // mul, suffix)
        return "%d" % b

    styles = {"mlcomm-auto": ("-", "o"), "mlcomm-shm": ("-", "s"), "mlcomm-mpi": ("-", "^"),
              "openmpi": (":", "x"), "openmpi-c": (":", "+"), "mpich": ("--", "d"),
              "gloo": ("-.", "v")}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, logy in zip(axes, (False, True)):
        for col in columns:
            xs = [s for s in sizes if (col, s) in cells]
            if not xs:
                continue
            med = [cells[(col, s)]["median"] for s in xs]
            ls, marker = styles[col]
            line, = ax.plot(xs, med, linestyle=ls, marker=marker, markersize=4,
                            label="%s: %s" % (col, WHAT[col]))
            ax.fill_between(xs, [cells[(col, s)]["min"] for s in xs],
                            [cells[(col, s)]["max"] for s in xs],
                            color=line.get_color(), alpha=0.15, linewidth=0)
        if bound_best:
            mems = [m for _, m in bound]
            ax.axhline(bound_best, linestyle="--", color="black", linewidth=1,
                       label="memory bound: busbw %.2f GB/s (memory bandwidth %.1f GB/s, "
                       "best of %d round(s))" % (bound_best, max(mems), len(mems)))
        ax.set_xscale("log", base=2)
        if sizes:
            lo = max(1, sizes[0]).bit_length() - 1
            hi = sizes[-1].bit_length()
            step = 1
            while (hi - lo) // step > 8:
                step *= 2
            ax.set_xticks([1 << e for e in range(lo, hi, step)])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: size_label(int(round(x)))))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel("size (bytes)")
        ax.set_ylabel("busbw (GB/s)%s" % (", log scale" if logy else ""))
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle("%s: median busbw over %d round(s), band: min-max" % (what, args.rounds))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    try:
        fig.savefig(png, dpi=100, bbox_inches="tight")
    except OSError as e:
        print("peers_table.py: cannot write %s: %s" % (png, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
