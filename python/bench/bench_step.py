"""The optimizer step from PyTorch: amo.torch against torch.optim.Adam
(for-loop and foreach=True), against the C library's own opt_step on the
same configuration and tensor sizes (python/bench_opt_step.c: the same
passes, the global norm's read of the gradients included), and against
`amo-bench kernels`' figure for the update kernel alone (no norm pass).

    meson devenv -C build /usr/bin/python3 ../python/bench/bench_step.py \\
        --threads 1,2 --rounds 5 --out results/python

Configurations: (a) one tensor of 64M parameters, (b) the 62 tensors of
torchvision's ResNet-18 (11.7M), (c) 256M parameters in 100 tensors.  Our
step and the C loop (bench_opt_step --serve, a long-lived process) take
turns every --steps steps, the order rotated each round, so that a change in
the machine's load hits both alike; then our Adam and torch's two take turns
the same way.  Figures: medians over every timed step; ratios: the median
over rounds of each round's ratio of medians.  Every optimizer gets one
untimed warm-up step.  Never a timed test: state the machine's conditions.
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


def ours(name, threads):
    cls = {"amo AMO": amo.torch.AMO, "amo Adam": amo.torch.Adam}[name]
    return lambda ps: cls(ps, threads=threads)


TORCH = {
    "torch Adam for-loop": lambda ps: torch.optim.Adam(ps, foreach=False),
    "torch Adam foreach": lambda ps: torch.optim.Adam(ps, foreach=True),
}


class Stepper:
    """One variant on the shared tensors: steps(k) times k steps, each alone."""

    def __init__(self, make, ps):
        self.opt = make(ps)
        self.opt.step()  # state allocated and touched outside the timing

    def steps(self, k):
        out = []
        for _ in range(k):
            t0 = time.perf_counter()
            self.opt.step()
            out.append(time.perf_counter() - t0)
        return out

    def close(self):
        del self.opt


class CLoop:
    """python/bench_opt_step.c --serve: the C library's opt_step in a C loop
    on tensors of the same sizes, stepped when asked, between our steps."""

    def __init__(self, algo, sizes, threads):
        exe = os.environ["AMO_BENCH_OPT_STEP"]
        self.p = subprocess.Popen([exe, "--algo", algo, "--threads", str(threads), "--steps", "1",
                                   "--sizes", ",".join(map(str, sizes)), "--serve"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "ready"

    def steps(self, k):
        self.p.stdin.write(f"{k}\n")
        self.p.stdin.flush()
        out = []
        for line in iter(self.p.stdout.readline, "done\n"):
            out.append(float(line.split()[1]))
        return out

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def interleave(steppers, rounds, k):
    """rounds x k steps of each stepper, the order rotated every round; returns
    every step's seconds and each round's median, per stepper."""
    names = list(steppers)
    times = {n: [] for n in names}
    per_round = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t = steppers[n].steps(k)
            times[n] += t
            per_round[n].append(statistics.median(t))
    for st in steppers.values():
        st.close()
    return times, per_round


def kernel_figures(threads, tmp):
    """amo-bench kernels' Gparam/s for the 64M update alone (adam, amo,
    sumsq), at the level auto picks: None where amo-bench is not built."""
    exe = os.environ.get("AMO_BENCH")
    if not exe or not os.path.exists(exe):
        return {}
    out = os.path.join(tmp, f"k{threads}")
    subprocess.run([exe, "kernels", "--arch", "auto", "--threads", str(threads), "--out", out,
                    "--benchmark_filter=^(adam|amo|sumsq)/[a-z0-9]+/kernel/n:67108864/",
                    "--benchmark_repetitions=3"],
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
            times, ratio = {}, {}
            # ours against the C loop, step for step, one algorithm at a time
            for name, algo in (("amo AMO", "amo"), ("amo Adam", "adam")):
                c = f"C opt_step {name.split()[1]}"
                t, pr = interleave({name: Stepper(ours(name, threads), ps),
                                    c: CLoop(algo, sizes, threads)}, args.rounds, args.steps)
                times.update(t)
                ratio[name + " / C"] = statistics.median(
                    [x / y for x, y in zip(pr[c], pr[name])])
            # ours against torch's two Adams
            t, pr = interleave({"amo Adam (again)": Stepper(ours("amo Adam", threads), ps),
                                **{k: Stepper(v, ps) for k, v in TORCH.items()}},
                               args.rounds, args.steps)
            times.update({k: v for k, v in t.items() if k in TORCH})
            best = [min(a, b) for a, b in zip(pr["torch Adam for-loop"], pr["torch Adam foreach"])]
            ratio["torch best / amo Adam"] = statistics.median(
                [x / y for x, y in zip(best, pr["amo Adam (again)"])])
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"\n({config}) {DESCRIBE[config]}: {n / 1e6:.1f}M parameters, {len(sizes)} "
                  f"tensors, {threads} thread(s), {args.rounds} rounds x {args.steps} steps "
                  f"interleaved; load average {os.getloadavg()[0]:.2f}")
            print(f"  {'variant':22s} {'ms/step':>9s} {'Gparam/s':>9s}")
            for k, v in med.items():
                print(f"  {k:22s} {v * 1e3:9.2f} {n / v / 1e9:9.3f}")
                rows.append({"config": config, "threads": threads, "params": n,
                             "tensors": len(sizes), "variant": k, "ms_per_step": v * 1e3,
                             "gparam_per_s": n / v / 1e9, "steps_timed": len(times[k])})
            for k, v in ratio.items():
                print(f"  ratio {k:28s} {v:6.3f}  (median over rounds)")
                rows.append({"config": config, "threads": threads, "params": n,
                             "tensors": len(sizes), "variant": f"ratio {k}",
                             "ms_per_step": "", "gparam_per_s": v, "steps_timed": args.rounds})
            for kname in ("amo", "adam", "sumsq"):
                if kname in kf:
                    print(f"  {'amo-bench kernels ' + kname:22s} {64 * M / kf[kname] / 1e6:9.2f} "
                          f"{kf[kname]:9.3f}  (64M, the kernel pass alone)")
            del ps
        for kname in ("amo", "adam", "sumsq"):
            if kname in kf:
                rows.append({"config": "kernel-64M", "threads": threads, "params": 64 * M,
                             "tensors": 1, "variant": f"amo-bench kernels {kname}",
                             "ms_per_step": 64 * M / kf[kname] / 1e6,
                             "gparam_per_s": kf[kname], "steps_timed": 3})
    shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        print(f"\nwrote {write_csv(args.out, 'step.csv', rows)}")


if __name__ == "__main__":
    main()
