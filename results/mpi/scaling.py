"""Data-parallel scaling model for amo-bench train under MPI (issue 17).

    /usr/bin/python3 results/mpi/scaling.py \
        --cifar results/study/throughput-cifar-w1.txt \
        --imagenet results/study/throughput-imagenet-r50.txt --out results/mpi

Inputs are `amo-bench throughput` reports measured on one node: per-image
forward and backward time, the optimizer step's time and the parameter count.
The network enters only through the allreduce of the gradients (4 bytes per
parameter, fp32), modelled as Open MPI's ring for large messages:

    t_ar(N) = 2 (N - 1) / N * S / B  +  2 (N - 1) * alpha,   S = 4 * parameters

with B the link's bandwidth (10 or 100 Gbit/s, at line rate: optimistic) and
alpha a per-message latency (--alpha, default 25 us: TCP over Ethernet).  One
node's step at per-node batch b:

    compute  = b * (t_fwd + t_bwd) + t_opt       (every rank runs the whole update)
    no overlap:   step = compute + t_ar
    full overlap: step = compute + max(0, t_ar - b * t_bwd)

(the buckets can hide the allreduce behind backward at best; amo-bench's
measured hidden share on 2 ranks sits between the two).  Two ways to grow:

    fixed global batch G (strong scaling, the optimizer's hyperparameters
    unchanged): b = G / N, efficiency = T(1) / (N * T(N));
    fixed per-node batch b = G (weak scaling): efficiency = compute / step.

--speedup K models nodes K times faster at compute (more cores) on the same
network: scaling-xK.csv and .png.  Writes scaling.csv (every point) and
scaling.png, and prints the node count at
which each efficiency first drops under 90%.
"""
import argparse
import csv
import os
import re

GBIT = 1e9 / 8


def read_throughput(path):
    text = open(path).read()
    m = re.search(r"(\d+) x \d+ x \d+ x \d+, \w+, (\d+) parameters", text)
    batch, params = int(m.group(1)), int(m.group(2))
    f = re.search(r"per step\s+forward ([\d.]+) ms, backward ([\d.]+) ms, optimizer ([\d.]+) ms",
                  text)
    fwd, bwd, opt = (float(x) / 1e3 for x in f.groups())
    ips = float(re.search(r"images/s\s+([\d.]+)", text).group(1))
    return {"batch": batch, "params": params, "t_fwd": fwd / batch, "t_bwd": bwd / batch,
            "t_opt": opt, "images_per_s": ips, "file": path}


def allreduce(n, size_bytes, bw, alpha):
    if n == 1:
        return 0.0
    return 2 * (n - 1) / n * size_bytes / bw + 2 * (n - 1) * alpha


def step_time(m, b, n, bw, alpha, overlap):
    compute = b * (m["t_fwd"] + m["t_bwd"]) + m["t_opt"]
    ar = allreduce(n, 4 * m["params"], bw, alpha)
    hidden = min(ar, b * m["t_bwd"]) if overlap else 0.0
    return compute, compute + ar - hidden


def efficiency(m, mode, g, n, bw, alpha, overlap):
    if mode == "strong":
        t1 = step_time(m, g, 1, bw, alpha, overlap)[1]
        tn = step_time(m, g / n, n, bw, alpha, overlap)[1]
        return t1 / (n * tn)
    compute, step = step_time(m, g, n, bw, alpha, overlap)
    return compute / step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cifar", required=True, help="throughput report, ResNet-18 CIFAR geometry")
    ap.add_argument("--imagenet", required=True, help="throughput report, ResNet-50 ImageNet")
    ap.add_argument("--cifar-batch", type=int, default=128, help="global batch (the study's)")
    ap.add_argument("--imagenet-batch", type=int, default=256,
                    help="global batch (--preset imagenet-resnet50)")
    ap.add_argument("--alpha", type=float, default=25e-6, help="per-message latency, seconds")
    ap.add_argument("--speedup", type=float, default=1.0,
                    help="nodes this many times faster at compute than the measured one "
                         "(the optimizer step too); the network unchanged")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    models = {"ResNet-18, CIFAR-10": (read_throughput(a.cifar), a.cifar_batch),
              "ResNet-50, ImageNet": (read_throughput(a.imagenet), a.imagenet_batch)}
    for m, _ in models.values():
        for k in ("t_fwd", "t_bwd", "t_opt"):
            m[k] /= a.speedup
    tag = "" if a.speedup == 1 else f"-x{a.speedup:g}"
    nodes = [2 ** k for k in range(11)]  # powers of 2: each divides the global batches
    rows, first_under = [], {}
    for name, (m, g) in models.items():
        for gbit in (10, 100):
            for mode in ("strong", "weak"):
                for overlap in (False, True):
                    key = (name, gbit, mode, overlap)
                    for n in nodes:
                        if mode == "strong" and n > g:
                            break
                        e = efficiency(m, mode, g, n, gbit * GBIT, a.alpha, overlap)
                        rows.append({"model": name, "gbit_per_s": gbit, "scaling": mode,
                                     "batch": g, "overlap": int(overlap), "nodes": n,
                                     "efficiency": round(e, 4)})
                        if e < 0.9 and key not in first_under:
                            first_under[key] = n
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, f"scaling{tag}.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for name, (m, g) in models.items():
        print(f"{name}: {m['params']} parameters ({4 * m['params'] / 1e6:.1f} MB of gradients), "
              f"per image forward {m['t_fwd'] * 1e3:.2f} ms + backward {m['t_bwd'] * 1e3:.2f} ms, "
              f"optimizer {m['t_opt'] * 1e3:.1f} ms per step ({m['file']})")
        for gbit in (10, 100):
            for mode in ("strong", "weak"):
                desc = f"global batch {g}" if mode == "strong" else f"batch {g} per node"
                cells = []
                for overlap in (False, True):
                    n = first_under.get((name, gbit, mode, overlap))
                    cells.append(f"{'overlap' if overlap else 'no overlap'}: "
                                 + (f"under 90% from {n} nodes" if n else "90% or more throughout"))
                print(f"  {gbit:3d} Gbit/s, {desc:20s}  " + "; ".join(cells))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (name, (m, g)) in zip(axes, models.items()):
        for gbit, colour in ((10, "tab:red"), (100, "tab:blue")):
            for mode, style in (("strong", "-"), ("weak", ":")):
                lo = [r for r in rows if r["model"] == name and r["gbit_per_s"] == gbit
                      and r["scaling"] == mode and not r["overlap"]]
                hi = [r for r in rows if r["model"] == name and r["gbit_per_s"] == gbit
                      and r["scaling"] == mode and r["overlap"]]
                x = [r["nodes"] for r in lo]
                ax.fill_between(x, [100 * r["efficiency"] for r in lo],
                                [100 * r["efficiency"] for r in hi], color=colour, alpha=0.15)
                ax.plot(x, [100 * r["efficiency"] for r in hi], style, color=colour,
                        label=f"{gbit} Gbit/s, "
                              + (f"global batch {g}" if mode == "strong" else f"{g} per node"))
        ax.axhline(90, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("nodes" + (" (each as the measured one)" if a.speedup == 1
                                 else f" (each {a.speedup:g}x the measured one)"))
        ax.set_title(f"{name}, {m['params'] / 1e6:.1f}M parameters")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("parallel efficiency, %")
    fig.suptitle("ring allreduce of fp32 gradients; line: all of it hidden behind backward "
                 "where backward is long enough, band: down to none hidden", fontsize=9)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out, f"scaling{tag}.png"), dpi=120)


if __name__ == "__main__":
    main()
