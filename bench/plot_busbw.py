#!/usr/bin/python3
"""Plot bus bandwidth against message size from mlcomm benchmark --json files.

Each JSON file is the output of one bench run (allreduce_bw ... --json FILE). The plot
gets one line per (benchmark, ranks, transport, memory kind, table section) with mlcomm's
busbw, plus, for files run with --vs-mpi, the MPI reference measured on the same buffers
(one dotted line per memory kind and section). A section is a row's type, op and root:
runs with -d all, -o all or -r all hold several, and their lines are labelled with it. Files with the same key are merged (a sweep split into several
runs, e.g. many iterations at small sizes and few at large ones, plots as one line; for
a size present twice the later file wins). With --bound, the memory-bandwidth bound of
files run with --bound is drawn as a horizontal dashed line (the mean, when several
files measured it).

The x axis is the size column (bytes, log 2); y is busbw in GB/s (10^9 B/s).

Needs matplotlib (Debian: apt-get install python3-matplotlib; run with /usr/bin/python3).

Examples:
  bench/plot_busbw.py -o allreduce.png host.json alloc.json --bound
  bench/plot_busbw.py -o ag.png --title "allgather, 2 ranks" --no-mpi ag_*.json
"""

import argparse
import json
import sys

MPI_CALL = {
    "allreduce_bw": "MPI_Allreduce",
    "broadcast_bw": "MPI_Bcast",
    "reduce_bw": "MPI_Reduce",
    "allgather_bw": "MPI_Allgather",
    "reduce_scatter_bw": "MPI_Reduce_scatter_block",
    "sendrecv_bw": "MPI_Sendrecv",
}


def size_label(b):
    """8 -> '8', 1024 -> '1K', 3 << 20 -> '3M' (powers of 1024, as the bench flags)."""
    for suffix, mul in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= mul and b % mul == 0:
            return "%d%s" % (b // mul, suffix)
    return "%d" % b


def load(paths):
    """Returns a list of (path, object), failing with a sentence on a bad file."""
    runs = []
    for path in paths:
        try:
            with open(path) as f:
                run = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit("plot_busbw.py: cannot read '%s': %s" % (path, e))
        if not isinstance(run, dict) or "rows" not in run or "bench" not in run:
            sys.exit("plot_busbw.py: '%s' is not a bench --json file (no bench/rows)" % path)
        if run.get("status") != "ok":
            print("plot_busbw.py: warning: '%s' has status '%s'; plotting its rows anyway"
                  % (path, run.get("status")), file=sys.stderr)
        if not run["rows"]:
            print("plot_busbw.py: warning: '%s' has no rows; skipped" % path, file=sys.stderr)
            continue
        runs.append((path, run))
    if not runs:
        sys.exit("plot_busbw.py: no rows to plot")
    return runs


def section(row):
    """A row's table section: runs with -d all, -o all or -r all hold several."""
    return (row.get("type"), row.get("redop"), row.get("root"))


def series_key(run, row):
    return (run["bench"], run["nranks"], run.get("transport", "?"),
            run.get("memory", "host"), section(row),
            bool(run.get("in_place")), run.get("async", 0))


def merge(runs, key_fn, value_fn):
    """{key: {size: value}} over all rows, later rows overriding earlier sizes."""
    out = {}
    for _, run in runs:
        for row in run["rows"]:
            k = key_fn(run, row)
            v = value_fn(row)
            if k is not None and v is not None:
                out.setdefault(k, {})[row["size"]] = v
    return {k: v for k, v in out.items() if v}


def section_label(sec):
    t, op, root = sec
    text = ", %s" % t
    if op not in (None, "none"):
        text += " " + op
    if root is not None and root >= 0:
        text += ", root %d" % root
    return text


def main():
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json", nargs="+", metavar="JSON", help="bench --json output file(s)")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="PNG file to write")
    p.add_argument("--bound", action="store_true",
                   help="draw the memory-bandwidth bound (files run with --bound) as a "
                        "horizontal dashed line")
    p.add_argument("--no-mpi", action="store_true", help="leave out the --vs-mpi reference")
    p.add_argument("--title", help="plot title (default: from the files)")
    p.add_argument("--logy", action="store_true", help="log-scale busbw axis")
    args = p.parse_args()

    runs = load(args.json)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        sys.exit("plot_busbw.py: needs matplotlib: apt-get install python3-matplotlib, "
                 "then run with /usr/bin/python3")

    benches = sorted({(r["bench"], r["nranks"]) for _, r in runs})
    multi = len(benches) > 1

    def prefix(bench, nranks):
        return "%s %d ranks, " % (bench, nranks) if multi else ""

    multi_section = len({section(row) for _, r in runs for row in r["rows"]}) > 1

    def sec_text(sec):
        return section_label(sec) if multi_section else ""

    fig, ax = plt.subplots(figsize=(9, 5.5))
    mine = merge(runs, series_key, lambda row: row.get("busbw"))
    for k in sorted(mine):
        bench, nranks, transport, memory, sec, in_place, async_ = k
        sizes = sorted(mine[k])
        label = "%smlcomm %s, %s memory%s" % (prefix(bench, nranks), transport, memory,
                                              sec_text(sec))
        if in_place:
            label += ", in place"
        if async_:
            label += ", async"
        ax.plot(sizes, [mine[k][s] for s in sizes], marker="o", markersize=3, label=label)

    if not args.no_mpi:
        def mpi_key(run, row):
            if not run.get("vs_mpi"):
                return None
            return (run["bench"], run["nranks"], run.get("memory", "host"), section(row),
                    bool(run.get("in_place")))
        ref = merge(runs, mpi_key, lambda row: row.get("mpi_busbw"))
        for k in sorted(ref):
            bench, nranks, memory, sec, in_place = k
            sizes = sorted(ref[k])
            label = "%s%s (reference), %s memory%s%s" % (
                prefix(bench, nranks), MPI_CALL.get(bench, "MPI"), memory, sec_text(sec),
                ", in place" if in_place else "")
            ax.plot(sizes, [ref[k][s] for s in sizes], linestyle=":", marker="x",
                    markersize=4, label=label)

    if args.bound:
        bounds = {}
        for _, run in runs:
            if (run.get("bound_busbw") or 0) > 0:  # none without --bound; 0 on 1 rank
                bounds.setdefault((run["bench"], run["nranks"]), []).append(run)
        if not bounds:
            print("plot_busbw.py: warning: --bound given, but no file was run with --bound",
                  file=sys.stderr)
        styles = [("--", "black"), ("-.", "dimgray"), ((0, (6, 3, 1, 3, 1, 3)), "gray")]
        for k, ((bench, nranks), rs) in enumerate(sorted(bounds.items())):
            style, color = styles[k % len(styles)]
            busbw = sum(r["bound_busbw"] for r in rs) / len(rs)
            mem = [r["mem_bw"] for r in rs]
            mem_text = ("%.1f GB/s" % mem[0] if len(mem) == 1 else
                        "%.1f-%.1f GB/s over %d runs" % (min(mem), max(mem), len(mem)))
            ax.axhline(busbw, linestyle=style, color=color, linewidth=1,
                       label="%smemory bound %.2f GB/s (memory bandwidth %s)"
                       % (prefix(bench, nranks), busbw, mem_text))

    ax.set_xscale("log", base=2)
    # a tick at every power of 2 the sizes span, or every 4th / 16th... when crowded
    all_sizes = [row["size"] for _, r in runs for row in r["rows"]]
    lo = max(1, min(all_sizes)).bit_length() - 1
    hi = max(all_sizes).bit_length()
    step = 1
    while (hi - lo) // step > 14:
        step *= 2
    ax.set_xticks([1 << e for e in range(lo, hi, step)])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: size_label(int(round(x)))))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    if args.logy:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("busbw (GB/s)")
    ax.grid(True, which="major", alpha=0.3)
    if args.title:
        title = args.title
    else:
        first = runs[0][1]
        what = ", ".join("%s %d ranks" % b for b in benches)
        op = first.get("op")
        title = "%s, %s%s" % (what, first.get("type"), "" if op in (None, "none") else " " + op)
    ax.set_title(title)
    # below the axes, so that it never hides a line or the bound
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              frameon=False)
    try:
        fig.savefig(args.output, dpi=110, bbox_inches="tight")
    except OSError as e:
        sys.exit("plot_busbw.py: cannot write '%s': %s" % (args.output, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
