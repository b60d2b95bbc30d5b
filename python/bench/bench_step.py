"""The optimizer step from PyTorch: amo.torch against torch.optim.Adam
(for-loop and foreach=True), against the C library's own opt_step on the
same configuration and tensor sizes (python/bench_opt_step.c: the same
passes, the global norm's read of the gradients included), and against
`amo-bench kernels`' figure for the update kernel alone (no norm pass).

    meson devenv -C build /usr/bin/python3 ../python/bench/bench_step.py \\
        --threads 1,2 --rounds 5 --out results/python

Configurations: (a) one tensor of 64M parameters, (b) the 62 tensors of
torchvision's ResNet-18 (11.7M), (c) 256M parameters in 100 tensors.  Every
round runs each variant in turn (ours, torch's two, then the C loop as a
subprocess), each on a fresh optimizer with one untimed warm-up step, so a
change in the machine's load hits all of them alike; figures are medians
over every timed step of every round.  Never a timed test: run it on an
idle machine and state the conditions.
"""
import argparse
import csv
import datetime
import glob
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

import amo
from benchutil import write_csv

M = 1 << 20


def sizes_of(config):
    if config == "a":
        return [64 * M]
    if config == "b":
        import torchvision
        return [p.numel() for p in torchvision.models.resnet18().parameters()]
    if config == "c":
        total, n = 256 * M, 100
        return [total // n + (i < total % n) for i in range(n)]
    raise ValueError(config)


DESCRIBE = {"a": "one 64M tensor", "b": "ResNet-18, 62 tensors, 11.7M",
            "c": "256M in 100 tensors"}


def make_tensors(sizes):
    g = torch.Generator().manual_seed(1)
    ps = []
    for n in sizes:
        p = torch.nn.Parameter(torch.rand(n, generator=g) - 0.5)
        p.grad = 1e-3 * (torch.rand(n, generator=g) - 0.5)
        ps.append(p)
    return ps


def variants(threads):
    return {
        "amo AMO": lambda ps: amo.torch.AMO(ps, threads=threads),
        "amo Adam": lambda ps: amo.torch.Adam(ps, threads=threads),
        "torch Adam for-loop": lambda ps: torch.optim.Adam(ps, foreach=False),
        "torch Adam foreach": lambda ps: torch.optim.Adam(ps, foreach=True),
    }


def time_python(make, ps, steps):
    opt = make(ps)
    opt.step()  # state allocated and touched outside the timing
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        out.append(time.perf_counter() - t0)
    del opt
    return out


def time_c(algo, sizes, threads, steps):
    exe = os.environ.get("AMO_BENCH_OPT_STEP")
    r = subprocess.run([exe, "--algo", algo, "--threads", str(threads), "--steps", str(steps),
                        "--sizes", ",".join(map(str, sizes))],
                       capture_output=True, text=True, check=True)
    return [float(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("step ")]


def kernel_figures(threads, tmp):
    """amo-bench kernels' Gparam/s for the 64M update alone (adam, amo,
    sumsq), at the level auto picks: None where amo-bench is not built."""
    exe = os.environ.get("AMO_BENCH")
    if not exe or not os.path.exists(exe):
        return {}
    out = os.path.join(tmp, f"k{threads}")
    subprocess.run([exe, "kernels", "--arch", "auto", "--threads", str(threads), "--out", out,
                    "--benchmark_filter=^(adam|amo|sumsq)/[a-z0-9]+/kernel/n:67108864/",
                    "--benchmark_repetitions=5"],
                   capture_output=True, text=True, check=True)
    figs = {}
    with open(glob.glob(os.path.join(out, f"kernels*_t{threads}.csv"))[0]) as f:
        for row in csv.DictReader(f):
            if int(row["n"]) == 64 * M:
                figs[row["kernel"]] = float(row["gparam_per_s"])
    return figs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--configs", default="a,b,c")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    ap.add_argument("--out", default=None, help="directory for step_tN.csv")
    args = ap.parse_args()
    threads_list = [int(t) for t in args.threads.split(",")]
    tmp = tempfile.mkdtemp()
    rows = []
    print(f"# {datetime.datetime.now().isoformat(timespec='seconds')} "
          f"{platform.node()} torch {torch.__version__} amo {amo.cpu_info()['level']} "
          f"({amo.library_path}); load average {os.getloadavg()[0]:.2f}")
    print(f"# {' '.join(sys.argv)}")
    for threads in threads_list:
        torch.set_num_threads(threads)
        kf = kernel_figures(threads, tmp)
        for config in args.configs.split(","):
            sizes = sizes_of(config)
            n = sum(sizes)
            ps = make_tensors(sizes)
            times = {name: [] for name in variants(threads)}
            times["C opt_step AMO"] = []
            times["C opt_step Adam"] = []
            for _ in range(args.rounds):
                for name, make in variants(threads).items():
                    times[name] += time_python(make, ps, args.steps)
                times["C opt_step AMO"] += time_c("amo", sizes, threads, args.steps)
                times["C opt_step Adam"] += time_c("adam", sizes, threads, args.steps)
            med = {k: statistics.median(v) for k, v in times.items()}
            best_torch = min(med["torch Adam for-loop"], med["torch Adam foreach"])
            print(f"\n({config}) {DESCRIBE[config]}: {n / 1e6:.1f}M parameters, {len(sizes)} "
                  f"tensors, {threads} thread(s), {args.rounds} rounds x {args.steps} steps")
            print(f"  {'variant':22s} {'ms/step':>9s} {'Gparam/s':>9s}  ratios")
            for k, v in med.items():
                note = ""
                if k == "amo AMO":
                    note = (f"{med['C opt_step AMO'] / v:.3f} of C opt_step; "
                            f"{best_torch / v:.1f}x torch's best")
                elif k == "amo Adam":
                    note = (f"{med['C opt_step Adam'] / v:.3f} of C opt_step; "
                            f"{best_torch / v:.1f}x torch's best")
                print(f"  {k:22s} {v * 1e3:9.2f} {n / v / 1e9:9.3f}  {note}")
                rows.append({"config": config, "threads": threads, "params": n,
                             "tensors": len(sizes), "variant": k, "ms_per_step": v * 1e3,
                             "gparam_per_s": n / v / 1e9, "steps_timed": len(times[k])})
            for kname in ("amo", "adam", "sumsq"):
                if kname in kf:
                    print(f"  {'amo-bench kernels ' + kname:22s} {'':9s} {kf[kname]:9.3f}  "
                          "(64M, the kernel pass alone)")
                    rows.append({"config": "kernel-64M", "threads": threads, "params": 64 * M,
                                 "tensors": 1, "variant": f"amo-bench kernels {kname}",
                                 "ms_per_step": 64 * M / kf[kname] / 1e6,
                                 "gparam_per_s": kf[kname], "steps_timed": 5})
            del ps
    shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        print(f"\nwrote {write_csv(args.out, 'step.csv', rows)}")


if __name__ == "__main__":
    main()
