#!/usr/bin/env python3
"""Draws train_gpt2's loss curve: plot_loss.py METRICS.jsonl OUT.png

METRICS.jsonl is the file train_gpt2 writes (one JSON object per line: training steps
carry "train_loss", evaluations "val_loss"). Needs matplotlib (Debian: python3-matplotlib).
"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    metrics, png = sys.argv[1], sys.argv[2]
    train, val = {}, {}
    with open(metrics) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            rec = json.loads(line)
            # a resumed run appends to the same file: later lines win
            if rec.get("train_loss") is not None:
                train[rec["step"]] = rec["train_loss"]
            if rec.get("val_loss") is not None:
                val[rec["step"]] = rec["val_loss"]
    if not train and not val:
        sys.exit(f"{metrics}: no losses to plot")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    if train:
        steps = sorted(train)
        ax.plot(steps, [train[s] for s in steps], label="train", linewidth=1)
    if val:
        steps = sorted(val)
        ax.plot(steps, [val[s] for s in steps], "o-", label="val", markersize=4)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("train_gpt2")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main()
