#!/usr/bin/env python3
"""results/theorem1's figure and table from `amo-bench convex`'s CSVs.

    /usr/bin/python3 results/theorem1/plot.py results/theorem1

writes DIR/convex.png (x_t against t, log t, one panel per (C, P): median over
seeds and the interquartile band of each optimizer) and DIR/table.md (where
each ends).  Needs numpy and matplotlib (Debian: python3-matplotlib).
"""
import csv
import os
import sys
from collections import defaultdict

LABEL = {"amo": "AMO, clipping at tau 1 (paper)", "amo-noclip": "AMO, no clipping",
         "adam": "Adam", "amsgrad-reference": "AMSGrad (reference, not in the library)",
         "sgd": "SGD"}
COLOR = {"amo": "C3", "amo-noclip": "C2", "adam": "C0", "amsgrad-reference": "C4", "sgd": "C1"}


def main(d):
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = defaultdict(lambda: defaultdict(list))  # (C, P) -> method -> [(seed, step, x)]
    with open(os.path.join(d, "convex_trace.csv"), newline="") as f:
        for r in csv.DictReader(f):
            trace[(float(r["C"]), int(r["P"]))][r["method"]].append(
                (int(r["seed"]), int(r["step"]), float(r["x"])))
    summ = defaultdict(list)
    with open(os.path.join(d, "convex_summary.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        summ[(float(r["C"]), int(r["P"]), r["method"])].append(r)
    probs = sorted(trace)
    fig, axes = plt.subplots(1, len(probs), figsize=(4.2 * len(probs), 4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (c, p) in zip(axes, probs):
        for m in LABEL:
            pts = trace[(c, p)].get(m)
            if not pts:
                continue
            steps = sorted({s for _, s, _ in pts})
            by = defaultdict(dict)
            for seed, s, x in pts:
                by[s][seed] = x
            ys = np.array([[by[s][k] for k in sorted(by[s])] for s in steps])
            q1, med, q3 = np.percentile(ys, [25, 50, 75], axis=1)
            ax.plot(steps, med, color=COLOR[m], label=LABEL[m])
            ax.fill_between(steps, q1, q3, color=COLOR[m], alpha=0.2)
        eg = (c - p + 1) / p
        ax.axhline(-1, color="k", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"C {c:g}, P {p}: E[g] = {eg:+.3g}, optimum -1", fontsize=9)
        ax.set_xlabel("step t (log scale)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("x_t (median, interquartile band over seeds)")
    axes[0].legend(fontsize=7, loc="center left")
    n = len({r["seed"] for r in rows})
    fig.suptitle(f"Reddi et al. (2018)'s 1-D problem: gradient C w.p. 1/P else -1, x in [-1, 1], "
                 f"lr {rows[0]['alpha0']}/sqrt(t), {rows[0]['steps']} steps, {n} seeds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "convex.png"), dpi=110)
    plt.close(fig)

    lines = ["| C | P | E[g] | " + " | ".join(LABEL[m] for m in LABEL) + " |",
             "|---|---|---|" + "---|" * len(LABEL)]
    for c, p in probs:
        cells = []
        for m in LABEL:
            rs = summ[(c, p, m)]
            xs = [float(r["avg_x_last10pct"]) for r in rs]
            fin = [float(r["final_x"]) for r in rs]
            cells.append(f"{sum(xs) / len(xs):+.3f} ({min(fin):+.2f} to {max(fin):+.2f})")
        lines.append(f"| {c:g} | {p} | {(c - p + 1) / p:+.3g} | " + " | ".join(cells) + " |")
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write("Mean over seeds of the average x over the last 10% of the steps (the final x's "
                "range over seeds in brackets); the optimum is -1.\n\n" + "\n".join(lines) + "\n")
    print(f"plot.py: wrote {d}/convex.png and {d}/table.md", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py DIR (with convex_summary.csv and convex_trace.csv)")
    main(sys.argv[1])
