"""A real training loop from PyTorch: torchvision's ResNet-18 (1 input
channel, 10 classes) on Fashion-MNIST (Debian's dataset-fashion-mnist, or
--synthetic), amo.torch.AMO against torch.optim.Adam (for-loop and
foreach): the step time and the optimizer's share of it.

    meson devenv -C build /usr/bin/python3 ../python/bench/train_resnet.py \\
        --threads 2 --steps 60 --out results/python

Each optimizer trains its own copy of one model from the same weights on
the same batches; the copies take turns step by step, so a change in the
machine's load hits all alike.  Figures are medians over the steps after
--warmup.
"""
import argparse
import copy
import gzip
import os
import statistics
import sys
import time

import torch
import torchvision

import amo
from benchutil import write_csv

FMNIST = "/usr/share/datasets/fashion-mnist"


def load_fmnist(n):
    path = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
    with gzip.open(path) as f:
        x = torch.frombuffer(bytearray(f.read()[16:]), dtype=torch.uint8)
    with gzip.open(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")) as f:
        y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8)
    x = x.view(-1, 1, 28, 28)[:n].float().div_(255).sub_(0.2860).div_(0.3530)
    return x, y[:n].long()


def model():
    m = torchvision.models.resnet18(num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.batch * args.steps
    if args.synthetic or not os.path.exists(FMNIST):
        data = "synthetic"
        x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
    else:
        data = "fashion-mnist"
        x, y = load_fmnist(n)
    base = model()
    runs = {
        "amo.torch.AMO": lambda p: amo.torch.AMO(p, lr=1e-3, threads=args.threads),
        "amo.torch.Adam": lambda p: amo.torch.Adam(p, lr=1e-3, threads=args.threads),
        "torch.optim.Adam for-loop": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False),
        "torch.optim.Adam foreach": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
    }
    models = {k: copy.deepcopy(base) for k in runs}
    opts = {k: make(models[k].parameters()) for k, make in runs.items()}
    t = {k: {"data": [], "forward": [], "backward": [], "optimizer": [], "total": []}
         for k in runs}
    losses = {k: [] for k in runs}
    print(f"# ResNet-18 (torchvision, 1 channel), {data} 28x28, batch {args.batch}, "
          f"{args.threads} thread(s), {args.steps} steps ({args.warmup} warm-up); "
          f"amo {amo.cpu_info()['level']}; load average {os.getloadavg()[0]:.2f}")
    print(f"# {' '.join(sys.argv)}")
    for step in range(args.steps):
        for k in runs:
            m, o = models[k], opts[k]
            t0 = time.perf_counter()
            xb = x[step * args.batch:(step + 1) * args.batch]
            yb = y[step * args.batch:(step + 1) * args.batch]
            t1 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(m(xb), yb)
            t2 = time.perf_counter()
            o.zero_grad(set_to_none=True)
            loss.backward()
            t3 = time.perf_counter()
            o.step()
            t4 = time.perf_counter()
            if step >= args.warmup:
                for name, v in (("data", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2),
                                ("optimizer", t4 - t3), ("total", t4 - t0)):
                    t[k][name].append(v)
            losses[k].append(loss.item())
    rows = []
    print(f"  {'optimizer':27s} {'step ms':>8s} {'fwd':>7s} {'bwd':>7s} {'optim':>7s} "
          f"{'share':>6s}  loss first -> last 5")
    for k in runs:
        med = {name: statistics.median(v) * 1e3 for name, v in t[k].items()}
        share = med["optimizer"] / med["total"]
        last = statistics.mean(losses[k][-5:])
        print(f"  {k:27s} {med['total']:8.1f} {med['forward']:7.1f} {med['backward']:7.1f} "
              f"{med['optimizer']:7.1f} {share:6.1%}  {losses[k][0]:.3f} -> {last:.3f}")
        rows.append({"optimizer": k, "threads": args.threads, "batch": args.batch, "data": data,
                     "steps_timed": len(t[k]["total"]), **{f"{n}_ms": v for n, v in med.items()},
                     "optimizer_share": share, "loss_last5": last})
    if args.out:
        print(f"wrote {write_csv(args.out, f'train_resnet18_t{args.threads}.csv', rows)}")


if __name__ == "__main__":
    main()
