#!/usr/bin/env python3
"""The study's numbers, tables and plots, all from the harness's CSVs.

    analyze.py best-lr OUT   -> CSV on stdout: variant,lr,val_acc (from OUT/sweep)
    analyze.py best-two OUT  -> variant,lr of the two best paired variants (OUT/main)
    analyze.py sweep-extend OUT -> variant,lr to add where the sweep's best is on an edge
    analyze.py report OUT    -> OUT/*.png, OUT/report.md, and the generated
                                sections of results/README.md rewritten

Every figure in the report comes from here: nothing is typed in by hand.
`best-lr` needs only the standard library; `report` needs numpy and
matplotlib (Debian: python3-matplotlib; run it with /usr/bin/python3).
"""
import csv
import math
import os
import random
import re
import sys
from collections import defaultdict

VARIANTS = ["adam", "amo-noclip", "amo", "sgd", "rmsprop"]
LABEL = {"adam": "Adam", "amo-noclip": "AMO, no clipping", "amo": "AMO (paper: clip 1, bounds)",
         "sgd": "SGD momentum 0.9", "rmsprop": "RMSprop 0.99"}
DEFAULT_LR = {"adam": 1e-3, "amo-noclip": 1e-3, "amo": 1e-3, "sgd": 0.1, "rmsprop": 1e-2}
BETA, GAMMA = 0.9, 0.999
TAU = 1.0
# two-sided 95% Student t quantiles by degrees of freedom
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228}


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def variant(row):
    if row["optimizer"] == "amo":
        if row["bias_correction"] == "1":
            return "amo-bc"
        return "amo" if row["clip"] == "1" else "amo-noclip"
    return row["optimizer"]


def fnum(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def best_lr(out):
    rows = read_csv(os.path.join(out, "sweep", "summary.csv"))
    if not rows:
        sys.exit(f"analyze.py: {out}/sweep/summary.csv: missing or empty (run the sweep first)")
    print("variant,lr,val_acc")
    for v in VARIANTS:
        cand = [(fnum(r["final_val_acc"]), -fnum(r["lr"]), r["lr"]) for r in rows
                if variant(r) == v and r["diverged"] == "0" and math.isfinite(fnum(r["final_val_acc"]))]
        if cand:
            acc, _, lr = max(cand)  # ties: the smaller learning rate
            print(f"{v},{lr},{acc:.4f}")


def best_two(out):
    """The two variants with the best mean validation accuracy in the paired
    runs (constant schedule), each at its best learning rate there."""
    S = Study(out)
    by = {}
    for v, lr, _ in S.configs():
        m = mean_std([fnum(r["final_val_acc"]) for r in S.main_runs(v, lr)])[0]
        if math.isfinite(m) and (v not in by or m > by[v][0]):
            by[v] = (m, lr)
    for v, (m, lr) in sorted(by.items(), key=lambda kv: -kv[1][0])[:2]:
        print(f"{v},{lr:g}")


def sweep_extend(out, grid, max_extra=2):
    """A variant whose best learning rate is at an end of the values tried
    gets the next value beyond it (1-3-10 steps), at most max_extra beyond
    the first grid on each side: the sweep is not allowed to end on an edge.
    grid: run.sh's first grid, "variant lr lr ...;variant lr ...". """
    rows = read_csv(os.path.join(out, "sweep", "summary.csv"))
    first = {}
    for item in grid.split(";"):
        v, *lrs = item.split()
        first[v] = (min(map(float, lrs)), max(map(float, lrs)))
    for v in VARIANTS:
        if v not in first:
            sys.exit(f"analyze.py: sweep-extend: the grid has no variant {v}")
        tried = {fnum(r["lr"]): r for r in rows if variant(r) == v}
        ok = [(fnum(r["final_val_acc"]), lr) for lr, r in tried.items()
              if r["diverged"] == "0" and math.isfinite(fnum(r["final_val_acc"]))]
        if not ok:
            continue
        best = max(ok)[1]
        lo, hi = first[v]
        up = best * (3 if f"{best:.0e}"[0] == "1" else 10 / 3)
        down = best / (3 if f"{best:.0e}"[0] == "3" else 10 / 3)
        n_up = sum(lr > hi * 1.01 for lr in tried)
        n_down = sum(lr < lo * 0.99 for lr in tried)
        if math.isclose(best, max(tried)) and n_up < max_extra:
            print(f"{v},{float(f'{up:.2g}'):g}")
        elif math.isclose(best, min(tried)) and n_down < max_extra:
            print(f"{v},{float(f'{down:.2g}'):g}")


# ---------------------------------------------------------------- report

def fmt_lr(x):
    return f"{x:g}"


def mean_std(xs):
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, s


def t_interval(d):
    m, s = mean_std(d)
    n = len(d)
    if n < 2:
        return m, float("nan"), float("nan")
    h = T975.get(n - 1, 1.96) * s / math.sqrt(n)
    return m, m - h, m + h


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return float("nan")
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def bootstrap_ratio(a, b, reps=10000, seed=12345):
    """Ratio of medians median(a)/median(b), paired by seed, 95% percentile CI."""
    rng = random.Random(seed)
    n = len(a)
    point = median(a) / median(b)
    rs = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        rs.append(median([a[i] for i in idx]) / median([b[i] for i in idx]))
    rs.sort()
    return point, rs[int(0.025 * reps)], rs[int(0.975 * reps) - 1]


class Study:
    def __init__(self, out):
        self.out = out
        self.sum = {}
        self.conv = defaultdict(list)
        self.steps = defaultdict(list)
        for phase in ("sweep", "main", "ablation"):
            d = os.path.join(out, phase)
            for r in read_csv(os.path.join(d, "summary.csv")):
                r["phase"] = phase
                self.sum[(phase, r["run_id"])] = r
            for r in read_csv(os.path.join(d, "convergence.csv")):
                self.conv[r["run_id"]].append(r)
            if phase != "sweep":  # per run: the combined steps.csv is not kept in git
                rd = os.path.join(d, "runs")
                for name in sorted(os.listdir(rd)) if os.path.isdir(rd) else []:
                    for r in read_csv(os.path.join(rd, name, "steps.csv")):
                        self.steps[r["run_id"]].append(r)
        self.best = {r["variant"]: float(r["lr"])
                     for r in read_csv(os.path.join(out, "sweep", "best_lr.csv"))}

    def runs(self, phase, v=None, lr=None, beta=None, gamma=None):
        res = []
        for r in self.sum.values():
            if r["phase"] != phase or (v and variant(r) != v):
                continue
            if lr is not None and not math.isclose(fnum(r["lr"]), lr, rel_tol=1e-6):
                continue
            if beta is not None and not math.isclose(fnum(r["beta"]), beta, rel_tol=1e-9):
                continue
            if gamma is not None and not math.isclose(fnum(r["gamma"]), gamma, rel_tol=1e-9):
                continue
            res.append(r)
        return sorted(res, key=lambda r: int(r["seed"]))

    def main_runs(self, v, lr, schedule="constant"):
        rs = [r for r in self.runs("main", v, lr) if r["schedule"] == schedule]
        if v == "amo":  # the main AMO runs are at the default beta, gamma
            rs = [r for r in rs if math.isclose(fnum(r["beta"]), BETA) and
                  math.isclose(fnum(r["gamma"]), GAMMA)]
        return rs

    def configs(self):
        """(variant, lr, tag) of the main phase: the default and the sweep's best."""
        res = []
        for v in VARIANTS:
            lrs = sorted({DEFAULT_LR[v], self.best.get(v, DEFAULT_LR[v])})
            for lr in lrs:
                tags = []
                if math.isclose(lr, DEFAULT_LR[v]):
                    tags.append("default")
                if v in self.best and math.isclose(lr, self.best[v]):
                    tags.append("best")
                if self.main_runs(v, lr):
                    res.append((v, lr, "+".join(tags)))
        return res

    def steps_per_epoch(self, r):
        c = self.conv[r["run_id"]][-1]
        return round(int(c["step"]) / fnum(c["epoch"]))

    def budget(self, r):
        return int(r["steps"])

    def steps_to(self, r, target):
        """First evaluation step with val_acc >= target; budget+1 if never."""
        for c in sorted(self.conv[r["run_id"]], key=lambda c: int(c["step"])):
            if fnum(c["val_acc"]) >= target:
                return int(c["step"])
        return self.budget(r) + 1

    def seconds_to(self, r, target):
        """Training seconds (steps.csv) up to the step that reached the target."""
        s = self.steps_to(r, target)
        if s > self.budget(r):
            return float("inf")
        rows = self.steps[r["run_id"]]
        return sum(fnum(x["data_ms"]) + fnum(x["forward_ms"]) + fnum(x["backward_ms"]) +
                   fnum(x["optimizer_ms"]) for x in rows[:s]) / 1e3

    def curve(self, r, col):
        cs = sorted(self.conv[r["run_id"]], key=lambda c: int(c["step"]))
        return [int(c["step"]) for c in cs], [fnum(c[col]) for c in cs]

    def would_clip(self, r):
        rows = self.steps[r["run_id"]]
        return sum(fnum(x["grad_norm"]) > TAU for x in rows) / max(1, len(rows))


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def pct(x, nd=2):
    return "n/a" if not math.isfinite(x) else f"{100 * x:.{nd}f}"


def report(out):
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S = Study(out)
    sec = {}
    mains = S.configs()
    if not mains:
        sys.exit(f"analyze.py: no main-phase runs under {out}/main")

    # ---- the sweep
    sw = S.runs("sweep")
    lrs_by_v = defaultdict(dict)
    for r in sw:
        lrs_by_v[variant(r)][fnum(r["lr"])] = r
    rows = []
    for v in VARIANTS:
        cells = []
        for lr in sorted(lrs_by_v[v]):
            r = lrs_by_v[v][lr]
            a = "diverged" if r["diverged"] == "1" else pct(fnum(r["final_val_acc"]))
            if v in S.best and math.isclose(lr, S.best[v]):
                a = f"**{a}**"
            cells.append(f"{fmt_lr(lr)}: {a}")
        rows.append([LABEL[v], "; ".join(cells)])
    sec["sweep"] = (f"Validation accuracy (%) after {int(fnum(sw[0]['steps'])) if sw else 0} steps, "
                    f"seed {sw[0]['seed'] if sw else '?'}; bold: the learning rate kept.\n\n"
                    + table(["variant", "learning rate: validation accuracy"], rows))

    # ---- the top target: the best tuned baseline's mean validation accuracy at half budget
    base = [(v, S.best[v]) for v in ("adam", "sgd", "rmsprop") if v in S.best and S.main_runs(v, S.best[v])]
    def final_mean(v, lr):
        return mean_std([fnum(r["final_val_acc"]) for r in S.main_runs(v, lr)])[0]
    bv, blr = max(base, key=lambda c: final_mean(*c))
    brs = S.main_runs(bv, blr)
    budget = S.budget(brs[0])
    half = []  # the best validation accuracy each seed has reached by half the budget
    for r in brs:
        st, va = S.curve(r, "val_acc")
        half.append(max(a for s_, a in zip(st, va) if s_ <= budget / 2))
    top = math.floor(mean_std(half)[0] / 0.005) * 0.005
    # 85%, the top target, and one halfway when they are a point or more apart
    targets = [0.85, round(top, 3)]
    if top - 0.85 >= 0.01:
        targets.insert(1, round(math.floor((0.85 + top) / 2 / 0.005) * 0.005, 3))
    targets = sorted(set(t for t in targets if t <= top + 1e-9)) or [round(top, 3)]

    # ---- main table
    rows = []
    for v, lr, tag in mains:
        rs = S.main_runs(v, lr)
        tm, ts = mean_std([fnum(r["final_test_acc"]) for r in rs])
        vm, vs = mean_std([fnum(r["final_val_acc"]) for r in rs])
        bm, bs = mean_std([fnum(r["best_val_acc"]) for r in rs])
        st = [median([S.steps_to(r, t) for r in rs]) for t in targets]
        stt = ["> %d" % budget if x > budget else "%d" % x for x in st]
        clip = mean_std([int(r["clipped_steps"]) / int(r["steps"]) for r in rs])[0]
        would = mean_std([S.would_clip(r) for r in rs])[0]
        atb = max(max((fnum(x["at_bound"]) for x in S.steps[r["run_id"]]), default=0) for r in rs)
        div = sum(r["diverged"] == "1" for r in rs)
        rows.append([LABEL[v], fmt_lr(lr) + f" ({tag})", len(rs), f"{pct(tm)} ± {pct(ts)}",
                     f"{pct(vm)} ± {pct(vs)}", f"{pct(bm)} ± {pct(bs)}"] + stt +
                    [pct(would, 1), pct(clip, 1), "%d" % atb if v == "amo" else "-", div])
    spe = S.steps_per_epoch(brs[0])
    sec["main"] = (f"{budget} steps ({budget / spe:.0f} epochs of {spe} steps), mean ± std over the "
                   f"seeds; test and val: at the last step; best val: the best of the "
                   f"evaluations (at a constant learning rate the last one is noisy); steps to a validation target: median over seeds (evaluations every "
                   f"100 steps; '> {budget}' = not reached, counted as {budget + 1}). "
                   f"'grad norm > {TAU:g}': share of steps whose gradient norm exceeded tau (where "
                   f"clipping would fire); 'clipped': share where it did; 'at bound': the most "
                   f"parameters on a bound after any step.\n\n" +
                   table(["variant", "lr", "seeds", "test acc %", "val acc %", "best val %"] +
                         [f"steps to {100 * t:g}%" for t in targets] +
                         ["grad norm > 1 (%)", "clipped (%)", "at bound", "diverged"], rows))

    # ---- paired differences
    def paired(a, b):
        ra = {r["seed"]: r for r in S.main_runs(*a)}
        rb = {r["seed"]: r for r in S.main_runs(*b)}
        seeds = sorted(set(ra) & set(rb), key=int)
        d = [fnum(ra[s]["final_test_acc"]) - fnum(rb[s]["final_test_acc"]) for s in seeds]
        return seeds, d

    comps = [(("amo", 1e-3), ("adam", 1e-3), "AMO (paper) - Adam, both lr 1e-3"),
             (("amo-noclip", 1e-3), ("adam", 1e-3), "no bias correction: AMO no-clip - Adam, lr 1e-3"),
             (("amo", 1e-3), ("amo-noclip", 1e-3), "clipping + bounds: AMO - AMO no-clip, lr 1e-3")]
    if "amo" in S.best and "adam" in S.best:
        comps.append((("amo", S.best["amo"]), ("adam", S.best["adam"]),
                      f"tuned: AMO lr {fmt_lr(S.best['amo'])} - Adam lr {fmt_lr(S.best['adam'])}"))
    if "amo-noclip" in S.best and "adam" in S.best:
        comps.append((("amo-noclip", S.best["amo-noclip"]), ("adam", S.best["adam"]),
                      f"tuned, no bias correction: AMO no-clip lr {fmt_lr(S.best['amo-noclip'])} "
                      f"- Adam lr {fmt_lr(S.best['adam'])}"))
    comps.append((("amo", S.best.get("amo", 1e-3)), (bv, blr),
                  f"tuned: AMO lr {fmt_lr(S.best.get('amo', 1e-3))} - best baseline "
                  f"({LABEL[bv]} lr {fmt_lr(blr)})"))
    rows, verdict_acc = [], {}
    for a, b, name in comps:
        seeds, d = paired(a, b)
        if not d:
            continue
        m, lo, hi = t_interval(d)
        rows.append([name, ", ".join(f"{100 * x:+.2f}" for x in d), f"{100 * m:+.2f}",
                     f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"])
        verdict_acc[name] = (m, lo, hi, len(d))
    sec["paired"] = ("Test accuracy difference in points, paired by seed (same initialisation and "
                     "data order); 95% interval: Student t over the seeds. On a 10k test set a gap "
                     "under about 0.5 points is noise.\n\n" +
                     table(["comparison", "per seed", "mean", "95% interval"], rows))

    # ---- speed
    rows, speed = [], {}
    pairs_speed = [(("amo", 1e-3), ("adam", 1e-3), "AMO / Adam, lr 1e-3")]
    if "amo" in S.best and "adam" in S.best:
        pairs_speed.append((("amo", S.best["amo"]), ("adam", S.best["adam"]), "AMO / Adam, tuned lr"))
    pairs_speed.append((("amo", S.best.get("amo", 1e-3)), (bv, blr), "AMO tuned / best baseline"))
    for a, b, name in pairs_speed:
        ra = {r["seed"]: r for r in S.main_runs(*a)}
        rb = {r["seed"]: r for r in S.main_runs(*b)}
        seeds = sorted(set(ra) & set(rb), key=int)
        if not seeds:
            continue
        for t in targets:
            sa = [S.steps_to(ra[s], t) for s in seeds]
            sb = [S.steps_to(rb[s], t) for s in seeds]
            p, lo, hi = bootstrap_ratio(sa, sb)
            ta = [S.seconds_to(ra[s], t) for s in seeds]
            tb = [S.seconds_to(rb[s], t) for s in seeds]
            tr = median(ta) / median(tb) if math.isfinite(median(ta) + median(tb)) else float("nan")
            rows.append([name, f"{100 * t:g}%", " ".join(map(str, sa)), " ".join(map(str, sb)),
                         f"{p:.2f}", f"[{lo:.2f}, {hi:.2f}]",
                         "n/a" if not math.isfinite(tr) else f"{tr:.2f}"])
            speed[(name, t)] = (p, lo, hi)
    sec["speed"] = (f"Steps to a validation target per seed; ratio of medians (below 1: AMO faster; "
                    f"the paper's \"25% faster\" is 0.75 or 0.80 depending on reading), 95% "
                    f"bootstrap interval over seeds (10,000 paired resamples: with 3 seeds it can "
                    f"only take a few values, so read it as a range, not a precise interval). "
                    f"The top target {100 * top:g}% is what the best tuned baseline ({LABEL[bv]} "
                    f"lr {fmt_lr(blr)}) has reached by half the budget (its best validation "
                    f"accuracy up to step {budget // 2}, mean over seeds {pct(mean_std(half)[0])}%, "
                    f"rounded down to 0.5 points). Seconds: ratio of "
                    f"median training seconds to the target.\n\n" +
                    table(["comparison", "target", "steps AMO", "steps other",
                           "ratio of medians", "95% bootstrap", "seconds ratio"], rows))

    # ---- ablation
    betas, gammas = [0.8, 0.9, 0.95], [0.99, 0.999, 0.9999]
    grid_acc = np.full((3, 3), np.nan)
    grid_steps = np.full((3, 3), np.nan)
    grid_n = np.zeros((3, 3), int)
    grid_seeds = {}
    rows = []
    for i, b in enumerate(betas):
        for j, g in enumerate(gammas):
            rs = S.runs("ablation", "amo", 1e-3, b, g)
            if math.isclose(b, BETA) and math.isclose(g, GAMMA):
                rs = [r for r in S.main_runs("amo", 1e-3) if r["seed"] in ("1", "2")]
            if not rs:
                continue
            grid_seeds[(i, j)] = {r["seed"]: fnum(r["final_test_acc"]) for r in rs}
            grid_n[i, j] = len(rs)
            grid_acc[i, j] = mean_std([fnum(r["final_test_acc"]) for r in rs])[0]
            grid_steps[i, j] = mean_std([S.steps_to(r, top) for r in rs])[0]
            rows.append([b, g, len(rs), " ".join(pct(fnum(r["final_test_acc"])) for r in rs),
                         pct(grid_acc[i, j]),
                         " ".join(str(S.steps_to(r, top)) for r in rs)])
    abl = None
    if np.isfinite(grid_acc).any():
        k = np.nanargmax(grid_acc)
        bi, bj = divmod(int(k), 3)
        centre = grid_acc[1, 1]
        bs_, cs_ = grid_seeds.get((bi, bj), {}), grid_seeds.get((1, 1), {})
        dseed = [bs_[k] - cs_[k] for k in sorted(set(bs_) & set(cs_), key=int)]
        abl = (betas[bi], gammas[bj], grid_acc[bi, bj], centre,
               int(np.sum(grid_acc > centre)), int(np.sum(np.isfinite(grid_acc))), dseed)
    sec["ablation"] = (f"AMO (clip 1, bounds), lr 1e-3, {budget} steps; test accuracy per seed and "
                       f"mean; steps to {100 * top:g}% validation (budget+1 = not reached). The "
                       f"centre cell (0.9, 0.999) is the main phase's AMO runs, seeds 1 and 2.\n\n" +
                       table(["beta", "gamma", "seeds", "test acc % per seed", "mean",
                              f"steps to {100 * top:g}%"], rows))

    # ---- the update size: AMO vs Adam, first 500 steps
    def upd(v, lr=1e-3, n=500):
        rs = S.main_runs(v, lr)
        arr = [[fnum(x["update_norm"]) for x in S.steps[r["run_id"]][:n]] for r in rs]
        arr = [a for a in arr if len(a) == n]
        return np.array(arr) if arr else None
    ua, un, ud = upd("amo"), upd("amo-noclip"), upd("adam")
    t = np.arange(1, 501)
    theory = (1 - BETA ** t) / np.sqrt(1 - GAMMA ** t)
    rows = []
    if un is not None and ud is not None:
        for s in (1, 12, 100, 500):
            r_n = np.mean(un[:, s - 1] / ud[:, s - 1])
            r_a = np.mean(ua[:, s - 1] / ud[:, s - 1]) if ua is not None else float("nan")
            rows.append([s, f"{theory[s - 1]:.3f}", f"{r_n:.3f}", f"{r_a:.3f}"])
    sec["update"] = ("||theta_t - theta_{t-1}|| over Adam's, mean over seeds, lr 1e-3 for all "
                     "three. The formula (1 - beta^t) / sqrt(1 - gamma^t) is the ratio for the same "
                     "gradients; past step 1 the runs' gradients differ, so it is a guide, not an "
                     "oracle. AMO (paper) also clips the gradient, which does not change a first "
                     "step (its size does not depend on the gradient's scale).\n\n" +
                     table(["step", "formula", "AMO no-clip / Adam", "AMO / Adam"], rows))

    # ---- cosine schedule: one run of the best two
    rows = []
    for v in VARIANTS:
        for lr in sorted({fnum(r["lr"]) for r in S.runs("main", v)}):
            for rc in S.main_runs(v, lr, "cosine"):
                same = [r for r in S.main_runs(v, lr) if r["seed"] == rc["seed"]]
                cst = pct(fnum(same[0]["final_test_acc"])) if same else "n/a"
                rows.append([LABEL[v], fmt_lr(lr), rc["seed"], pct(fnum(rc["final_test_acc"])), cst,
                             pct(fnum(rc["final_val_acc"])),
                             pct(fnum(same[0]["final_val_acc"])) if same else "n/a"])
    sec["cosine"] = ("The two variants with the best mean validation accuracy in the paired runs, "
                     "at their best learning rate, with a cosine schedule to zero over the same "
                     "budget; one seed, against the constant-rate run of the same seed.\n\n" +
                     (table(["variant", "lr", "seed", "test % cosine", "test % constant",
                             "val % cosine", "val % constant"], rows) if rows else "not run"))

    # ---- timing
    rows = []
    for v, lr, tag in mains:
        rs = S.main_runs(v, lr)
        ips = median([fnum(r["images_per_s"]) for r in rs])
        parts = [median([fnum(r[c]) for r in rs]) for c in ("data_ms", "forward_ms", "backward_ms",
                                                              "optimizer_ms")]
        tot = sum(parts)
        rows.append([LABEL[v], fmt_lr(lr), f"{ips:.0f}", f"{tot:.1f}"] +
                    [f"{p:.2f} ({100 * p / tot:.1f}%)" for p in parts])
    thr = S.main_runs(*mains[0][:2])[0]["threads"]
    sec["timing"] = (f"Median over seeds of each run's mean per step; {thr} thread(s) per run, two "
                     f"runs side by side on the 2 cores (so each run shares L3 and memory bandwidth "
                     f"with the other).\n\n" +
                     table(["variant", "lr", "images/s", "ms/step", "data ms", "forward ms",
                            "backward ms", "optimizer ms"], rows))

    # ---- claims
    def acc_verdict(name):
        if name not in verdict_acc:
            return "n/a", "not run"
        m, lo, hi, n = verdict_acc[name]
        meas = f"{100 * m:+.2f} points, 95% [{100 * lo:+.2f}, {100 * hi:+.2f}] ({n} seeds)"
        if lo > 0:
            return meas, "holds: AMO better beyond seed noise"
        if hi < 0:
            return meas, "does not hold: AMO worse beyond seed noise"
        return meas, "not supported: the difference is within seed noise"
    claims = []
    c1 = "AMO (paper) - Adam, both lr 1e-3"
    m1, v1 = acc_verdict(c1)
    tuned = [k for k in verdict_acc if k.startswith("tuned: AMO") and "Adam" in k]
    m1b, v1b = acc_verdict(tuned[0]) if tuned else ("n/a", "not run")
    claims.append(["AMO beats Adam in accuracy (CIFAR-10 ResNet-18 94.2% vs 92.1%; ImageNet "
                   "ResNet-50 76.8% vs 75.2%)",
                   f"Fashion-MNIST ResNet-18 w1/8, {budget} steps, test set: defaults {m1}; "
                   f"each at its best lr {m1b}", f"{v1} (defaults); {v1b} (tuned)"])
    def speed_verdict(key):
        if key not in speed:
            return "n/a", "not run"
        p, lo, hi = speed[key]
        meas = f"steps ratio {p:.2f}, 95% [{lo:.2f}, {hi:.2f}]"
        if hi < 1 and p <= 0.8:
            return meas, "holds"
        if lo > 0.8:
            return meas, "does not hold (25% faster is excluded)"
        if hi < 1:
            return meas, "AMO faster, but by less than 25%"
        return meas, "not supported: no speed-up beyond seed noise"
    meas, vers = [], []
    for key, name in (("AMO / Adam, lr 1e-3", "defaults"), ("AMO / Adam, tuned lr", "tuned")):
        for tg in (targets[0], targets[-1]):
            m_, v_ = speed_verdict((key, tg))
            meas.append(f"{name}, {100 * tg:g}%: {m_}")
            vers.append(f"{name}, {100 * tg:g}%: {v_}")
    claims.append(["25% faster convergence on average",
                   "AMO/Adam steps to a validation target, ratio of medians: " + "; ".join(meas),
                   "; ".join(vers)])
    if abl:
        b, g, a, c, nbetter, ncells, dseed = abl
        if not math.isfinite(c):
            ver = "not run (no centre cell)"
        elif nbetter == 0:
            ver = "holds: no cell beats the default"
        elif dseed and all(d > 0.005 for d in dseed):
            ver = (f"does not hold: beta {b:g}, gamma {g:g} beat the default on every seed by "
                   f"more than 0.5 points")
        else:
            ver = ("not supported: the default is not the best cell, but the best one does "
                   "not beat it beyond noise on every seed")
        claims.append(["beta 0.9 and gamma 0.999 are the best settings (ablation)",
                       f"best of {ncells} cells: beta {b:g}, gamma {g:g} at {pct(a)}% (mean of "
                       f"{len(dseed)} seeds; per seed vs the default: "
                       f"{', '.join(f'{100 * d:+.2f}' for d in dseed)} points); default {pct(c)}%; "
                       f"{nbetter} of {ncells - 1} other cells above the default", ver])
    if un is not None and ud is not None:
        r1 = np.mean(un[:, 0] / ud[:, 0])
        claims.append(["AMO's first step is 3.16x Adam's (no bias correction; from the update rule)",
                       f"measured update norm ratio at step 1: {r1:.3f} (formula 3.162)",
                       "holds" if abs(r1 / 3.16228 - 1) < 0.01 else "does not hold"])
    claims.append(["The CIFAR-10 and ImageNet figures themselves",
                   "not run: see 'CIFAR-10 and ImageNet here' below",
                   "cannot be tested here (no data on the machine, and the cost below)"])
    sec["claims"] = table(["paper's claim", "measured (this study)", "verdict"], claims)

    # ---- plots
    colors = {"adam": "C0", "amo-noclip": "C2", "amo": "C3", "sgd": "C1", "rmsprop": "C4"}
    figs = []

    def band(ax, v, lr, col, label, smooth=0):
        rs = S.main_runs(v, lr)
        if col == "loss":
            ys = [np.array([fnum(x["loss"]) for x in S.steps[r["run_id"]]]) for r in rs]
            n = min(len(y) for y in ys)
            ys = np.array([y[:n] for y in ys])
            k = smooth
            ys = np.array([np.convolve(y, np.ones(k) / k, mode="valid") for y in ys])
            xs = np.arange(k, n + 1)
        else:
            cs = [S.curve(r, col) for r in rs]
            n = min(len(c[0]) for c in cs)
            xs = np.array(cs[0][0][:n])
            ys = np.array([c[1][:n] for c in cs])
        ax.plot(xs, ys.mean(0), color=colors[v], label=label)
        ax.fill_between(xs, ys.min(0), ys.max(0), color=colors[v], alpha=0.2)

    for col, fname, ylab, smooth in (("val_acc", "val_acc_vs_step.png", "validation accuracy", 0),
                                     ("loss", "train_loss_vs_step.png",
                                      "training loss (label-smoothed, mean of 50 steps)", 50)):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, which in zip(axes, ("default", "best")):
            for v, lr, tag in mains:
                if which in tag.split("+"):
                    band(ax, v, lr, col, f"{LABEL[v]} lr {fmt_lr(lr)}", smooth)
            ax.set_title(f"{'paper defaults' if which == 'default' else 'best lr of the sweep'}"
                         f" (mean, min-max over seeds)")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            if col == "val_acc":
                ax.set_ylim(0.80, 0.94)
            else:
                ax.set_ylim(0.3, 1.2)
        axes[0].set_ylabel(ylab)
        fig.tight_layout()
        fig.savefig(os.path.join(out, fname), dpi=110)
        plt.close(fig)
        figs.append(fname)

    if un is not None and ud is not None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for arr, v in ((ud, "adam"), (un, "amo-noclip"), (ua, "amo")):
            if arr is not None:
                axes[0].plot(t, arr.mean(0), color=colors[v], label=LABEL[v])
        axes[0].set_yscale("log")
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("||update||_2 (mean over seeds)")
        axes[0].set_title("update size, first 500 steps, lr 1e-3")
        axes[0].legend(fontsize=8)
        axes[0].grid(alpha=0.3)
        axes[1].plot(t, (un / ud).mean(0), color=colors["amo-noclip"], label="AMO no-clip / Adam")
        if ua is not None:
            axes[1].plot(t, (ua / ud).mean(0), color=colors["amo"], label="AMO / Adam")
        axes[1].plot(t, theory, "k--", label="(1-beta^t)/sqrt(1-gamma^t)")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("ratio of update norms")
        axes[1].legend(fontsize=8)
        axes[1].grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "update_size_first500.png"), dpi=110)
        plt.close(fig)
        figs.append("update_size_first500.png")

    if np.isfinite(grid_acc).any():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, g, title, fmtf in ((axes[0], grid_acc * 100, "test accuracy % (mean)", "{:.2f}"),
                                   (axes[1], grid_steps, f"steps to {100 * top:g}% val (mean)",
                                    "{:.0f}")):
            im = ax.imshow(g, cmap="viridis" if ax is axes[0] else "viridis_r")
            ax.set_xticks(range(3), [str(x) for x in gammas])
            ax.set_yticks(range(3), [str(x) for x in betas])
            ax.set_xlabel("gamma")
            ax.set_ylabel("beta")
            ax.set_title(title)
            for i in range(3):
                for j in range(3):
                    if np.isfinite(g[i, j]):
                        ax.text(j, i, fmtf.format(g[i, j]) + f"\n(n={grid_n[i, j]})",
                                ha="center", va="center", color="w", fontsize=9)
            fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "ablation_heatmap.png"), dpi=110)
        plt.close(fig)
        figs.append("ablation_heatmap.png")

    if sw:
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for v in VARIANTS:
            xs = sorted(lrs_by_v[v])
            ys = [fnum(lrs_by_v[v][x]["final_val_acc"]) for x in xs]
            ax.plot(xs, ys, "o-", color=colors[v], label=LABEL[v])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("validation accuracy after the sweep")
        ax.set_ylim(0.5, 0.95)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "sweep.png"), dpi=110)
        plt.close(fig)
        figs.append("sweep.png")

    # ---- cost on CIFAR-10 and ImageNet, from the throughput runs beside the study
    def ips(name):
        path = os.path.join(out, name)
        if not os.path.exists(path):
            return float("nan"), ""
        txt = open(path).read()
        m = re.search(r"images/s\s+([0-9.]+)", txt)
        head = txt.splitlines()[0] if txt else ""
        return (float(m.group(1)) if m else float("nan")), head
    allruns = list(S.sum.values())
    imgs = sum(int(r["steps"]) * int(r["batch"]) for r in allruns)
    secs = sum(fnum(r["train_seconds"]) for r in allruns)
    ntrain = spe * int(brs[0]["batch"])  # training images per epoch here
    lines = [f"This study: {len(allruns)} runs, {imgs / 1e6:.1f} M training images, "
             f"{secs / 3600:.2f} h of training time summed over runs (two runs at a time).", ""]
    rows = []
    c8, h8 = ips("throughput-cifar-w0.125.txt")
    c1, h1 = ips("throughput-cifar-w1.txt")
    r50, h50 = ips("throughput-imagenet-r50.txt")
    cif_imgs = imgs * 45000 / ntrain  # the same epochs on CIFAR-10's 45k training split
    if math.isfinite(c8):
        rows.append(["this study on CIFAR-10 (32x32x3, width 1/8, 45k/5k split)", f"{c8:.0f}",
                     f"{45000 / c8 / 60:.1f} min", f"{cif_imgs / c8 / 3600:.1f} h"])
    if math.isfinite(c1):
        rows.append(["this study on CIFAR-10 at the paper's full width", f"{c1:.1f}",
                     f"{45000 / c1 / 60:.1f} min", f"{cif_imgs / c1 / 3600:.0f} h"])
    if math.isfinite(r50):
        rows.append(["ResNet-50 ImageNet (224x224x3, batch 32), per epoch of 1.28M images",
                     f"{r50:.1f}", f"{1.281167e6 / r50 / 3600:.0f} h", "-"])
    lines.append("Training-step images/s measured by `amo-bench throughput` on random data (2 "
                 "threads, the study not running); evaluation passes add about 10%.\n")
    lines.append(table(["setting", "images/s", "one epoch", "the whole study"], rows))
    sec["cost"] = "\n".join(lines)

    sec["figures"] = "\n".join(f"- [{f}](study/{f})" for f in figs)

    # ---- write: report.md (everything) and README.md's generated sections
    order = ["claims", "sweep", "main", "paired", "speed", "ablation", "update", "cosine", "timing",
             "cost",
             "figures"]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("# Generated by results/study/analyze.py from the CSVs; do not edit\n\n")
        for k in order:
            f.write(f"## {k}\n\n{sec[k]}\n\n")
    readme = os.path.join(os.path.dirname(os.path.abspath(out)), "README.md")
    if os.path.exists(readme):
        text = open(readme).read()
        for k in order:
            text, n = re.subn(rf"(<!-- generated:{k} -->\n).*?(<!-- /generated:{k} -->)",
                              lambda m: m.group(1) + sec[k] + "\n" + m.group(2), text,
                              flags=re.S)
            if n != 1:
                sys.exit(f"analyze.py: {readme}: {n} 'generated:{k}' sections, expected 1")
        open(readme, "w").write(text)
    print(f"analyze.py: wrote {out}/report.md and {len(figs)} figures", file=sys.stderr)


if __name__ == "__main__":
    cmds = {"best-lr": best_lr, "best-two": best_two, "sweep-extend": sweep_extend,
            "report": report}
    nargs = 4 if sys.argv[1:2] == ["sweep-extend"] else 3
    if len(sys.argv) != nargs or sys.argv[1] not in cmds:
        sys.exit("usage: analyze.py best-lr|best-two|report OUT\n"
                 "       analyze.py sweep-extend OUT 'variant lr lr ...;variant lr ...'")
    cmds[sys.argv[1]](*sys.argv[2:])
