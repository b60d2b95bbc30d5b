#!/usr/bin/env python3
"""The study's numbers, tables and plots, all from the harness's CSVs.

    analyze.py best-lr OUT   -> CSV on stdout: variant,lr,val_acc (from OUT/sweep)
    analyze.py best-two OUT  -> variant,lr of the two best paired variants (OUT/main)
    analyze.py sweep-extend OUT -> variant,lr to add where the sweep's best is on an edge
    analyze.py report OUT    -> OUT/*.png, OUT/report.md, and the generated
                                sections of results/README.md rewritten

Every figure in the report comes from here: nothing is typed in by hand.
`best-lr` needs only the standard library; `report` needs numpy, scipy and
matplotlib (Debian: python3-scipy python3-matplotlib; run it with
/usr/bin/python3).  The statistics and verdict rules are PROTOCOL.md's:
paired Student-t intervals for accuracy differences, t-intervals on the
per-seed log step-ratios for speed, an additive two-way ANOVA for the
ablation, Holm's adjustment across the claims tested together.
"""
import csv
import math
import os
import re
import sys
from collections import defaultdict

VARIANTS = ["adam", "amo-noclip", "amo", "sgd", "rmsprop"]
LABEL = {"adam": "Adam", "amo-noclip": "AMO, no clipping", "amo": "AMO (paper: clip 1, bounds)",
         "sgd": "SGD momentum 0.9", "rmsprop": "RMSprop 0.99"}
DEFAULT_LR = {"adam": 1e-3, "amo-noclip": 1e-3, "amo": 1e-3, "sgd": 0.1, "rmsprop": 1e-2}
BETA, GAMMA = 0.9, 0.999
TAU = 1.0
SPEEDUP = 0.8  # the paper's "25% faster" read as a step ratio of 0.8 (PROTOCOL.md, H2)
ALPHA = 0.05   # family-wise error of each family of verdicts (Holm)


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
    """1e-3, 3e-3 (as the paper and run.sh write them); 0.01, 0.1 as they are."""
    return f"{x:.0e}".replace("e-0", "e-") if 0 < x < 0.01 else f"{x:g}"


def mean_std(xs):
    xs = [x for x in xs if math.isfinite(x)]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, s


def t_interval(d, level=0.95):
    """Mean of d and its Student-t interval (scipy.stats.t quantile, n - 1 df)."""
    from scipy import stats
    m, s = mean_std(d)
    n = len([x for x in d if math.isfinite(x)])
    if n < 2:
        return m, float("nan"), float("nan")
    h = stats.t.ppf(0.5 + level / 2, n - 1) * s / math.sqrt(n)
    return m, m - h, m + h


def t_pvalue(d, mu0, alternative):
    """One-sided one-sample t-test of mean(d) against mu0: alternative
    'greater' (H0: mean <= mu0) or 'less' (H0: mean >= mu0)."""
    from scipy import stats
    m, s = mean_std(d)
    n = len([x for x in d if math.isfinite(x)])
    if n < 2:
        return float("nan")
    if s == 0:  # every seed the same value: the test's limit as sd -> 0
        return 0.0 if (m > mu0 if alternative == "greater" else m < mu0) else 1.0
    tval = (m - mu0) / (s / math.sqrt(n))
    return stats.t.sf(tval, n - 1) if alternative == "greater" else stats.t.cdf(tval, n - 1)


def holm(ps):
    """Holm's step-down adjusted p-values over the whole family: a member
    without a p-value (NaN: not computable, or no verdict by the censoring
    rule) counts as p = 1, so the family never shrinks; it stays NaN."""
    idx = sorted((p if math.isfinite(p) else 1.0, i) for i, p in enumerate(ps))
    m, out, run = len(ps), [float("nan")] * len(ps), 0.0
    for k, (p, i) in enumerate(idx):
        run = max(run, min(1.0, (m - k) * p))
        if math.isfinite(ps[i]):
            out[i] = run
    return out


def log_ratios(a, b):
    """Per-seed ln(a_s / b_s) of paired step counts."""
    return [math.log(x / y) for x, y in zip(a, b)]


def ratio_interval(r, level=0.95):
    """exp of the mean log ratio (the geometric mean ratio) and its t-interval."""
    m, lo, hi = t_interval(r, level)
    return math.exp(m), math.exp(lo), math.exp(hi)


def anova_additive(y, factors):
    """Additive ANOVA of y on categorical factors (lists of labels, one per
    observation): least squares on dummy codes, type II sums of squares (each
    factor's SS is the residual SS gained by adding it last), F tests against
    the residual mean square with scipy.stats.f.  Returns
    {name: (df, SS, F, p)} with 'residual': (df, SS, nan, nan)."""
    import numpy as np
    from scipy import stats
    y = np.asarray(y, float)

    def design(names):
        cols = [np.ones(len(y))]
        for nm in names:
            levels = sorted(set(factors[nm]), key=str)
            for lv in levels[1:]:
                cols.append(np.array([1.0 if v == lv else 0.0 for v in factors[nm]]))
        return np.column_stack(cols)

    def rss(names):
        X = design(names)
        beta, *_ = np.linalg.lstsq(X, y, rcond=None)
        e = y - X @ beta
        return float(e @ e), np.linalg.matrix_rank(X)

    names = list(factors)
    full, rank = rss(names)
    dfr = len(y) - rank
    res = {}
    for nm in names:
        red, rank_red = rss([n for n in names if n != nm])
        df = rank - rank_red
        F = ((red - full) / df) / (full / dfr) if dfr > 0 and full > 0 else float("nan")
        res[nm] = (df, red - full, F, float(stats.f.sf(F, df, dfr)) if math.isfinite(F) else float("nan"))
    res["residual"] = (dfr, full, float("nan"), float("nan"))
    return res


def anova_interaction(y, a, b, block):
    """The a x b interaction beside the additive model y ~ a + b + block: the
    residual SS it removes, F against the residual of the model with it, p
    (scipy.stats.f).  Returns (df, SS, F, p)."""
    import numpy as np
    from scipy import stats
    y = np.asarray(y, float)

    def dummies(v):
        levels = sorted(set(v), key=str)
        return [np.array([1.0 if x == lv else 0.0 for x in v]) for lv in levels[1:]]
    da, db, dk = dummies(a), dummies(b), dummies(block)
    base = [np.ones(len(y))] + da + db + dk
    inter = [u * w for u in da for w in db]

    def rss(cols):
        X = np.column_stack(cols)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        e = y - X @ coef
        return float(e @ e), np.linalg.matrix_rank(X)
    r0, k0 = rss(base)
    r1, k1 = rss(base + inter)
    df, dfr = k1 - k0, len(y) - k1
    if df < 1 or dfr < 1 or r1 <= 0:
        return df, r0 - r1, float("nan"), float("nan")
    F = ((r0 - r1) / df) / (r1 / dfr)
    return df, r0 - r1, F, float(stats.f.sf(F, df, dfr))


def plot_band(ax, S, rs, col, color, label, smooth=0):
    """The median over runs rs of a curve and its interquartile band: col
    "loss" from steps.csv (a running mean of smooth steps), else a
    convergence.csv column in percent.  Returns the curves."""
    import numpy as np
    if col == "loss":
        ys = [np.array([fnum(x["loss"]) for x in S.steps[r["run_id"]]]) for r in rs]
        n = min(len(y) for y in ys)
        ys = np.array([np.convolve(y[:n], np.ones(smooth) / smooth, mode="valid") for y in ys])
        xs = np.arange(smooth, n + 1)
    else:
        cs = [S.curve(r, col) for r in rs]
        n = min(len(c[0]) for c in cs)
        xs = np.array(cs[0][0][:n])
        ys = 100 * np.array([c[1][:n] for c in cs])
    q1, med, q3 = np.percentile(ys, [25, 50, 75], axis=0)
    ax.plot(xs, med, color=color, label=label)
    ax.fill_between(xs, q1, q3, color=color, alpha=0.2)
    return ys


def write_generated(out, sec, keys):
    """Rewrites the sections between <!-- generated:K --> markers of the
    README.md beside OUT (results/README.md) with sec[K], through a temporary
    and a rename: two reports at once leave one of them whole."""
    readme = os.path.join(os.path.dirname(os.path.abspath(out)), "README.md")
    if not os.path.exists(readme):
        return
    text = open(readme).read()
    for k in keys:
        text, n = re.subn(rf"(<!-- generated:{k} -->\n).*?(<!-- /generated:{k} -->)",
                          lambda m: m.group(1) + sec[k] + "\n" + m.group(2), text, flags=re.S)
        if n != 1:
            sys.exit(f"analyze.py: {readme}: {n} 'generated:{k}' sections, expected 1")
    tmp = f"{readme}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, readme)


def width_name(w):
    """0.125 -> 'w1/8', 1 -> 'w1' (the model's width as the text names it)."""
    from fractions import Fraction
    f = Fraction(w).limit_denominator(64)
    return f"w{f.numerator}" if f.denominator == 1 else f"w{f.numerator}/{f.denominator}"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return float("nan")
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


class Study:
    def __init__(self, out):
        self.out = out
        self.sum = {}
        self.conv = defaultdict(list)
        self.steps = defaultdict(list)
        for phase in ("sweep", "main", "ablation", "ablation2", "confirm", "explore"):
            d = os.path.join(out, phase)
            for r in read_csv(os.path.join(d, "summary.csv")):
                r["phase"] = "ablation" if phase == "ablation2" else phase
                self.sum[(phase, r["run_id"])] = r
            for r in read_csv(os.path.join(d, "convergence.csv")):
                self.conv[r["run_id"]].append(r)
            if phase in ("main", "ablation", "confirm"):  # per run: the combined steps.csv is not kept in git
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


def theorem1_claim(d):
    """The claims-table row of Theorem 1 from results/theorem1/convex_summary.csv
    (amo-bench convex), by PROTOCOL.md's rule: AMO converges on a problem when the
    mean over seeds of its average iterate over the last 10% of the steps is
    within 0.1 of the optimum -1, fails when within 0.1 of +1."""
    rows = read_csv(os.path.join(d, "convex_summary.csv"))
    claim = ("Theorem 1: regret O(sqrt(T)) on convex problems at alpha0/sqrt(t), so the "
             "iterates reach the optimum")
    if not rows:
        return [claim, "not run (results/theorem1)", "n/a"]
    by = defaultdict(list)
    for r in rows:
        by[(fnum(r["C"]), int(r["P"]), r["method"])].append(fnum(r["avg_x_last10pct"]))
    probs = sorted({(c, p) for c, p, _ in by})
    steps, nseeds = int(rows[0]["steps"]), len({r["seed"] for r in rows})
    parts, verdicts = [], []
    for m, label in (("amo-noclip", "AMO without clipping"), ("amo", "AMO, clipping at tau 1")):
        res = []
        for c, p in probs:
            x = sum(by[(c, p, m)]) / len(by[(c, p, m)])
            res.append((c, p, x, "converges" if x < -0.9 else "fails" if x > 0.9 else "undecided"))
        parts.append(label + ": " + ", ".join(f"(C {c:g}, P {p}) {x:+.3f}" for c, p, x, _ in res))
        fails = [r_ for r_ in res if r_[3] == "fails"]
        if all(r_[3] == "converges" for r_ in res):
            verdicts.append(f"{label}: holds on every (C, P)")
        elif fails:
            verdicts.append(f"{label}: does not hold (ends at +1 on " +
                            ", ".join(f"(C {c:g}, P {p})" for c, p, _, _ in fails) + ")")
        else:
            verdicts.append(f"{label}: not supported (does not reach -1 on some (C, P))")
    ref = []
    for m in ("adam", "amsgrad-reference", "sgd"):
        ref.append(m + " " + ", ".join(f"{sum(by[(c, p, m)]) / len(by[(c, p, m)]):+.3f}"
                                       for c, p in probs))
    return [claim, f"Reddi et al.'s 1-D problem (x in [-1, 1], gradient C w.p. 1/P else -1, "
            f"optimum -1), {steps} steps, mean over {nseeds} seeds of the average x over the "
            f"last 10%: " + "; ".join(parts) + "; for reference " + "; ".join(ref) +
            " (results/theorem1)", "; ".join(verdicts)]


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

    # ---- the targets the runs were timed against (summary.csv's target columns)
    r0 = S.main_runs("amo", DEFAULT_LR["amo"])[0]
    csv_targets = [fnum(r0[f"target{k}"]) for k in range(1, 5) if math.isfinite(fnum(r0.get(f"target{k}")))]
    verdict_targets = [t for t in csv_targets if t <= 0.90 + 1e-9]  # PROTOCOL.md: 85 / 88 / 90%
    scale = (f"{r0['dataset'].replace('fashion', 'Fashion-MNIST')} "
             f"{r0['model'].replace('resnet', 'ResNet-')} {width_name(fnum(r0['width']))}")

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

    d_lr = fmt_lr(DEFAULT_LR["amo"])  # AMO's, AMO no-clip's and Adam's default are the same
    c1 = f"AMO (paper) - Adam, both lr {d_lr}"
    comps = [(("amo", DEFAULT_LR["amo"]), ("adam", DEFAULT_LR["adam"]), c1),
             (("amo-noclip", DEFAULT_LR["amo"]), ("adam", DEFAULT_LR["adam"]),
              f"no bias correction: AMO no-clip - Adam, lr {d_lr}"),
             (("amo", DEFAULT_LR["amo"]), ("amo-noclip", DEFAULT_LR["amo"]),
              f"clipping + bounds: AMO - AMO no-clip, lr {d_lr}")]
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
        p_up, p_down = t_pvalue(d, 0, "greater"), t_pvalue(d, 0, "less")
        rows.append([name, ", ".join(f"{100 * x:+.2f}" for x in d), f"{100 * m:+.2f}",
                     f"[{100 * lo:+.2f}, {100 * hi:+.2f}]", f"{p_up:.3f}", f"{p_down:.3f}"])
        verdict_acc[name] = (m, lo, hi, len(d), p_up, p_down)
    sec["paired"] = ("Test accuracy at the last step, difference in points, paired by seed (same "
                     "initialisation and data order); 95% interval: Student t over the seeds "
                     "(mean +- t(0.975, n-1) sd/sqrt(n)): a procedure that covers the true mean "
                     "difference at this scale in 95% of repeated studies, not the seeds' range. "
                     "p: one-sided t-tests, unadjusted (the claims below adjust them).\n\n" +
                     table(["comparison", "per seed", "mean", "95% interval",
                            "p (AMO better)", "p (AMO worse)"], rows))

    # ---- speed: t-intervals on the per-seed log step-ratios (PROTOCOL.md, H2)
    rows, speed = [], {}
    pairs_speed = [(("amo", DEFAULT_LR["amo"]), ("adam", DEFAULT_LR["adam"]),
                    f"AMO / Adam, lr {d_lr}")]
    if "amo" in S.best and "adam" in S.best:
        pairs_speed.append((("amo", S.best["amo"]), ("adam", S.best["adam"]), "AMO / Adam, tuned lr"))
    pairs_speed.append((("amo", S.best.get("amo", DEFAULT_LR["amo"])), (bv, blr),
                        "AMO tuned / best baseline"))
    for a, b, name in pairs_speed:
        ra = {r["seed"]: r for r in S.main_runs(*a)}
        rb = {r["seed"]: r for r in S.main_runs(*b)}
        seeds = sorted(set(ra) & set(rb), key=int)
        if not seeds:
            continue
        for t in verdict_targets:
            sa = [S.steps_to(ra[s], t) for s in seeds]
            sb = [S.steps_to(rb[s], t) for s in seeds]
            lr_ = log_ratios(sa, sb)
            p, lo, hi = ratio_interval(lr_)
            cens = max(sum(x > budget for x in sa), sum(x > budget for x in sb))
            p_fast = t_pvalue(lr_, 0, "less")
            p_not25 = t_pvalue(lr_, math.log(SPEEDUP), "greater")
            rows.append([name, f"{100 * t:g}%", " ".join(map(str, sa)), " ".join(map(str, sb)),
                         " ".join(f"{math.exp(x):.2f}" for x in lr_), f"{p:.2f}",
                         f"[{lo:.2f}, {hi:.2f}]", f"{p_fast:.3f}", f"{p_not25:.3f}",
                         cens or ""])
            speed[(name, t)] = (p, lo, hi, p_fast, p_not25, cens, len(seeds))
    sec["speed"] = (f"Steps to a validation target per seed (evaluations every 100 steps; "
                    f"{budget + 1} = not reached, counted so). The ratio is exp(mean of the "
                    f"per-seed ln(steps AMO / steps other)), the geometric mean of the per-seed "
                    f"ratios; its 95% interval is the Student-t interval of that mean, "
                    f"exponentiated (below 1: AMO faster; the paper's \"25% faster\" is read as "
                    f"{SPEEDUP:g}). p (faster): one-sided t-test of mean ln ratio < 0; p (not 25%): "
                    f"of mean ln ratio > ln {SPEEDUP:g}; both unadjusted.\n\n" +
                    table(["comparison", "target", "steps AMO", "steps other", "per-seed ratio",
                           "ratio", "95% interval", "p (faster)", "p (not 25%)", "censored"], rows))

    # ---- ablation: beta x gamma, an additive two-way ANOVA with seed as a block
    betas, gammas = [0.8, 0.9, 0.95], [0.99, 0.999, 0.9999]
    abl_seeds = sorted({r["seed"] for r in S.runs("ablation")}, key=int)
    grid_acc = np.full((3, 3), np.nan)
    grid_steps = np.full((3, 3), np.nan)
    grid_n = np.zeros((3, 3), int)
    grid_seeds = {}
    rows, obs = [], []
    for i, b in enumerate(betas):
        for j, g in enumerate(gammas):
            rs = S.runs("ablation", "amo", DEFAULT_LR["amo"], b, g)
            if math.isclose(b, BETA) and math.isclose(g, GAMMA):  # the main phase's AMO runs
                rs = [r for r in S.main_runs("amo", DEFAULT_LR["amo"]) if r["seed"] in abl_seeds]
                have = {r["seed"] for r in rs}  # then phase A's (PROTOCOL.md, phase B)
                rs += sorted((r for r in S.sum.values() if r["phase"] == "confirm"
                              and variant(r) == "amo" and init_of(r) == "he"
                              and r["schedule"] == "constant" and r["seed"] in abl_seeds
                              and r["seed"] not in have), key=lambda r: int(r["seed"]))
            if not rs:
                continue
            grid_seeds[(i, j)] = {r["seed"]: fnum(r["final_test_acc"]) for r in rs}
            obs += [(b, g, r["seed"], 100 * fnum(r["final_test_acc"]), r) for r in rs]
            grid_n[i, j] = len(rs)
            grid_acc[i, j] = mean_std([fnum(r["final_test_acc"]) for r in rs])[0]
            grid_steps[i, j] = mean_std([S.steps_to(r, top) for r in rs])[0]
            rows.append([b, g, len(rs), " ".join(pct(fnum(r["final_test_acc"])) for r in rs),
                         pct(grid_acc[i, j]),
                         " ".join(str(S.steps_to(r, top)) for r in rs)])
    anova, abl = None, None
    if len(obs) > 9:
        y = [o[3] for o in obs]
        anova = anova_additive(y, {"beta": [o[0] for o in obs], "gamma": [o[1] for o in obs],
                                   "seed": [o[2] for o in obs]})
        try:  # the hand-written ANOVA against statsmodels, where Debian has it
            import pandas as pd
            import statsmodels.api as sm
            import statsmodels.formula.api as smf
            df = pd.DataFrame({"y": y, "b": [str(o[0]) for o in obs],
                               "g": [str(o[1]) for o in obs], "s": [o[2] for o in obs]})
            ref = sm.stats.anova_lm(smf.ols("y ~ C(b) + C(g) + C(s)", df).fit(), typ=2)
            for nm, key in (("beta", "C(b)"), ("gamma", "C(g)"), ("seed", "C(s)")):
                if not math.isclose(anova[nm][3], ref.loc[key, "PR(>F)"], rel_tol=1e-6):
                    sys.exit(f"analyze.py: ANOVA p for {nm} {anova[nm][3]} != statsmodels' "
                             f"{ref.loc[key, 'PR(>F)']}")
            inter = anova_interaction(y, df["b"], df["g"], [o[2] for o in obs])
            ref = sm.stats.anova_lm(smf.ols("y ~ C(b) * C(g) + C(s)", df).fit(), typ=2)
            if math.isfinite(inter[3]) and not math.isclose(inter[3], ref.loc["C(b):C(g)", "PR(>F)"],
                                                           rel_tol=1e-6):
                sys.exit(f"analyze.py: interaction p {inter[3]} != statsmodels' "
                         f"{ref.loc['C(b):C(g)', 'PR(>F)']}")
        except ImportError:
            pass
        anova["beta x gamma"] = anova_interaction(y, [o[0] for o in obs], [o[1] for o in obs],
                                                  [o[2] for o in obs])
        p_adj = dict(zip(("beta", "gamma"), holm([anova["beta"][3], anova["gamma"][3]])))
        # the best level of each factor and its paired difference from the default level
        def marginal(nm, k):
            lv = betas if nm == "beta" else gammas
            by = {x: [o[3] for o in obs if o[k] == x] for x in lv}
            return {x: mean_std(v)[0] for x, v in by.items() if v}
        eff = {}
        for nm, k, dflt in (("beta", 0, BETA), ("gamma", 1, GAMMA)):
            mm = marginal(nm, k)
            best = max(mm, key=mm.get)
            # per seed: mean over the other factor at the best level minus at the default
            d = []
            for sd in abl_seeds:
                a_ = [o[3] for o in obs if o[k] == best and o[2] == sd]
                c_ = [o[3] for o in obs if math.isclose(o[k], dflt) and o[2] == sd]
                if a_ and c_:
                    d.append(sum(a_) / len(a_) - sum(c_) / len(c_))
            eff[nm] = (best, mm, d, t_interval(d) if len(d) > 1 else (float("nan"),) * 3)
        abl = (p_adj, eff)
    arows = []
    if anova:
        for nm in ("beta", "gamma", "seed", "residual", "beta x gamma"):
            df_, ss, F, pv = anova[nm]
            arows.append([nm, df_, f"{ss:.3f}", "" if not math.isfinite(F) else f"{F:.2f}",
                          "" if not math.isfinite(pv) else f"{pv:.3f}",
                          f"{abl[0][nm]:.3f}" if nm in abl[0] else ""])
    sec["ablation"] = (f"AMO (clip 1, bounds), lr {d_lr}, {budget} steps; test accuracy at the last "
                       f"step per seed and mean; steps to {100 * top:g}% validation ({budget + 1} = "
                       f"not reached). The centre cell (0.9, 0.999) is the main phase's AMO runs "
                       f"of the same seeds ({', '.join(abl_seeds)}).\n\n" +
                       table(["beta", "gamma", "seeds", "test acc % per seed", "mean",
                              f"steps to {100 * top:g}%"], rows) +
                       ("\n\nAdditive two-way ANOVA of test accuracy (points) on beta and gamma "
                        "with the seed as a block (type II sums of squares, F tests, "
                        "scipy.stats.f; checked against statsmodels where installed); Holm over "
                        "the two factors. The last row tests the beta x gamma interaction beside "
                        "that model (F against the residual of the model with it; reported, "
                        "outside the verdict).\n\n" +
                        table(["term", "df", "sum of squares", "F", "p", "p (Holm)"], arows)
                        if arows else ""))

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
    sec["timing"] = (f"Median over seeds of each run's mean per step; {thr} thread(s) per run "
                     f"(how many ran at a time is not in the CSVs: run.sh's JOBS).\n\n" +
                     table(["variant", "lr", "images/s", "ms/step", "data ms", "forward ms",
                            "backward ms", "optimizer ms"], rows))

    # ---- claims: PROTOCOL.md's rules.  The family is H1 (accuracy, defaults) and
    # H2 (speed, defaults) at each verdict target; Holm within the family,
    # separately for "holds" and for "does not hold".
    fam = [("acc", c1)] + [("speed", (f"AMO / Adam, lr {d_lr}", t)) for t in verdict_targets]
    p_hold, p_fail = [], []
    for kind, key in fam:
        if kind == "acc" and key in verdict_acc:
            p_hold.append(verdict_acc[key][4])
            p_fail.append(verdict_acc[key][5])
        elif kind == "speed" and key in speed:
            p_hold.append(speed[key][3])
            p_fail.append(speed[key][4])
        else:
            p_hold.append(float("nan"))
            p_fail.append(float("nan"))
    adj = dict(zip([k for _, k in fam], zip(holm(p_hold), holm(p_fail))))
    nfam = sum(math.isfinite(p) for p in p_hold)

    def acc_verdict(name, adjusted=None):
        if name not in verdict_acc:
            return "n/a", "not run"
        m, lo, hi, n, p_up, p_down = verdict_acc[name]
        ph, pf = adjusted if adjusted else (p_up, p_down)
        meas = (f"{100 * m:+.2f} points, 95% [{100 * lo:+.2f}, {100 * hi:+.2f}] ({n} seeds; "
                f"p {'Holm-adjusted' if adjusted else 'unadjusted'} {ph:.3f} / {pf:.3f})")
        if ph < ALPHA:
            return meas, "holds: AMO better"
        if pf < ALPHA:
            return meas, "does not hold: AMO worse"
        gap = "; a 1-point gap is excluded" if hi < 0.01 else ""
        return meas, "not supported: no difference beyond seed noise" + gap
    claims = []
    m1, v1 = acc_verdict(c1, adj.get(c1))
    tuned = [k for k in verdict_acc if k.startswith("tuned: AMO") and "Adam" in k]
    m1b, v1b = acc_verdict(tuned[0]) if tuned else ("n/a", "not run")
    claims.append(["AMO beats Adam in accuracy (CIFAR-10 ResNet-18 94.2% vs 92.1%; ImageNet "
                   "ResNet-50 76.8% vs 75.2%)",
                   f"{scale}, {budget} steps, test set at the last step: defaults {m1}; "
                   f"each at its sweep-best lr (outside the family) {m1b}",
                   f"{v1} (defaults); {v1b} (tuned)"])

    def speed_verdict(key):
        if key not in speed:
            return "n/a", "not run"
        p, lo, hi, p_fast, p_not25, cens, n = speed[key]
        ph, pf = adj.get(key, (p_fast, p_not25))
        meas = f"ratio {p:.2f}, 95% [{lo:.2f}, {hi:.2f}], p (Holm) {ph:.3f} / {pf:.3f}"
        if cens > 2:
            return meas, "cannot be decided: not reached on more than 2 seeds"
        if p <= SPEEDUP and ph < ALPHA:
            return meas, "holds"
        if pf < ALPHA:
            return meas, f"does not hold (a ratio of {SPEEDUP:g} or less is excluded)"
        if ph < ALPHA:
            return meas, f"not supported: AMO faster, but not by 25%"
        return meas, "not supported: no speed-up beyond seed noise"
    meas, vers = [], []
    for tg in verdict_targets:
        m_, v_ = speed_verdict((f"AMO / Adam, lr {d_lr}", tg))
        meas.append(f"{100 * tg:g}%: {m_}")
        vers.append(f"{100 * tg:g}%: {v_}")
    claims.append(["25% faster convergence on average",
                   f"AMO/Adam steps to a validation target at the defaults, geometric mean of the "
                   f"per-seed ratios: " + "; ".join(meas), "; ".join(vers)])
    if abl:
        p_adj, eff = abl
        sig = [nm for nm in ("beta", "gamma") if p_adj[nm] < ALPHA]
        bad = [nm for nm in sig if not math.isclose(eff[nm][0], BETA if nm == "beta" else GAMMA)
               and eff[nm][3][1] > 0]
        desc = "; ".join(
            f"{nm}: p (Holm) {p_adj[nm]:.3f}, best level {eff[nm][0]:g} "
            f"({pct(eff[nm][1][eff[nm][0]] / 100)}% vs {pct(eff[nm][1][BETA if nm == 'beta' else GAMMA] / 100)}% "
            f"at the default; paired by seed {100 * eff[nm][3][0] / 100:+.2f} points, 95% "
            f"[{eff[nm][3][1]:+.2f}, {eff[nm][3][2]:+.2f}])" for nm in ("beta", "gamma"))
        if bad:
            ver = ("does not hold: " + ", ".join(f"{nm} {eff[nm][0]:g} beats the default" for nm in bad))
        elif all(nm not in sig or math.isclose(eff[nm][0], BETA if nm == "beta" else GAMMA)
                 for nm in ("beta", "gamma")):
            ver = "holds: no factor beats its default level significantly"
        else:
            ver = "not supported: a factor matters, but its best level does not beat the default beyond noise"
        claims.append(["beta 0.9 and gamma 0.999 are the best settings (ablation)",
                       f"additive two-way ANOVA over {len(obs)} runs ({len(abl_seeds)} seeds): "
                       + desc + ". Without bias correction gamma also sets AMO's step size, so "
                       "gamma's effect is not an averaging effect alone", ver])
        # the paper's qualitative statements (descriptive, PROTOCOL.md H4a/H4b)
        top_t = 0.88 if 0.88 in verdict_targets else top
        slower = faster = 0
        per = []
        for sd in abl_seeds:
            a_ = [o[4] for o in obs if math.isclose(o[0], BETA) and math.isclose(o[1], 0.9999) and o[2] == sd]
            c_ = [o[4] for o in obs if math.isclose(o[0], BETA) and math.isclose(o[1], GAMMA) and o[2] == sd]
            if a_ and c_:
                x, y_ = S.steps_to(a_[0], top_t), S.steps_to(c_[0], top_t)
                per.append(f"{x} vs {y_}")
                slower += x > y_
                faster += x < y_
        need = (3 * len(per) + 3) // 4  # 3 of 4 seeds (2 of 2 on the pilot)
        ver = ("seen" if slower >= need else "the opposite seen (gamma 0.9999 faster)"
               if faster >= need else "not seen")
        claims.append(["gamma 0.9999 converges slower (ablation, qualitative)",
                       f"steps to {100 * top_t:g}% at beta 0.9, gamma 0.9999 vs 0.999, per seed: "
                       + ", ".join(per), ver])
        def unstable(b):
            out_ = 0
            for o in obs:
                if math.isclose(o[0], b):
                    st, va = S.curve(o[4], "val_acc")
                    drops = [va[k - 1] - va[k] for k in range(1, len(va))]
                    out_ += o[4]["diverged"] == "1" or (max(drops, default=0) > 0.05)
            return out_, sum(math.isclose(o[0], b) for o in obs)
        u95, n95 = unstable(0.95)
        u90, n90 = unstable(BETA)
        claims.append(["beta 0.95 is unstable (ablation, qualitative)",
                       f"runs that diverged or lost more than 5 validation points between two "
                       f"evaluations: beta 0.95 {u95} of {n95}, beta 0.9 {u90} of {n90}",
                       "seen" if u95 > 0 and u90 == 0 else "not seen"])
    claims.append(theorem1_claim(os.path.join(os.path.dirname(os.path.abspath(out)), "theorem1")))
    claims.append(["The CIFAR-10 and ImageNet figures themselves",
                   "not run: see 'CIFAR-10 and ImageNet here' below",
                   "cannot be tested here (no data on the machine, and the cost below)"])
    sec["claims"] = (table(["paper's claim", "measured (this study)", "verdict"], claims) +
                     f"\n\nHolm family: the accuracy claim at the defaults and the speed claim at "
                     f"{', '.join(f'{100 * t:g}%' for t in verdict_targets)} ({nfam} tests, "
                     f"family-wise error {100 * ALPHA:g}%); the tuned comparison, the ablation "
                     f"(its own family of 2) and the qualitative rows are outside it.")

    # ---- plots
    colors = {"adam": "C0", "amo-noclip": "C2", "amo": "C3", "sgd": "C1", "rmsprop": "C4"}
    figs = []

    def band(ax, v, lr, col, label, smooth=0):
        """Median and interquartile band over seeds."""
        rs = S.main_runs(v, lr)
        return plot_band(ax, S, rs, col, colors[v], f"{label} ({len(rs)} seeds)", smooth)

    for col, fname, ylab, smooth in (("val_acc", "val_acc_vs_step.png", "validation accuracy (%)", 0),
                                     ("loss", "train_loss_vs_step.png",
                                      "training loss (label-smoothed, mean of 10 steps)", 10)):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        lo_y, hi_y = [], []
        for ax, which in zip(axes, ("default", "best")):
            for v, lr, tag in mains:
                if which in tag.split("+"):
                    ys = band(ax, v, lr, col, f"{LABEL[v]} lr {fmt_lr(lr)}", smooth)
                    lo_y.append(np.percentile(ys, 25, axis=0).min())
                    hi_y.append(np.percentile(ys, 75, axis=0).max())
            if col == "val_acc":
                for tg in verdict_targets:
                    ax.axhline(100 * tg, color="k", ls=":", lw=0.8)
                    ax.text(105, 100 * tg + 0.2, f"target {100 * tg:g}%", fontsize=7)
            ax.set_title(f"{'paper defaults' if which == 'default' else 'best lr of the sweep'}: "
                         f"median, interquartile band")
            ax.set_xscale("log")
            ax.set_xlabel("step (log scale)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="lower right" if col == "val_acc" else "upper right")
        if col == "val_acc":
            axes[0].set_ylim(max(0, min(lo_y) - 2), min(100, max(hi_y) + 1))
        else:
            axes[0].set_ylim(0.9 * min(lo_y), min(max(hi_y), 2.5))
        axes[0].set_ylabel(ylab)
        fig.suptitle(f"{scale}, batch {r0['batch']}, {budget} steps; evaluations every "
                     f"{S.curve(r0, 'val_acc')[0][0]} steps", fontsize=9)
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

    if obs:
        fig, ax = plt.subplots(figsize=(9, 4.2))
        cells = [(b, g) for b in betas for g in gammas]
        for k, (b, g) in enumerate(cells):
            ys = [o[3] for o in obs if math.isclose(o[0], b) and math.isclose(o[1], g)]
            ax.scatter([k] * len(ys), ys, s=14, color="C3" if (b, g) == (BETA, GAMMA) else "C0")
            if ys:
                ax.hlines(sum(ys) / len(ys), k - 0.3, k + 0.3, color="k")
        ax.set_xticks(range(len(cells)), [f"b {b:g}\ng {g:g}" for b, g in cells], fontsize=8)
        ax.set_ylabel("test accuracy at the last step (%)")
        ax.set_title(f"ablation: every seed a point ({len(abl_seeds)} seeds), the mean a bar; "
                     f"red: the paper's default" +
                     (f"; ANOVA p beta {anova['beta'][3]:.2f}, gamma {anova['gamma'][3]:.3f}"
                      if anova else ""), fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "ablation_cells.png"), dpi=110)
        plt.close(fig)
        figs.append("ablation_cells.png")

    if sw:
        fig, ax = plt.subplots(figsize=(6.8, 4.4))
        for v in VARIANTS:
            xs = sorted(lrs_by_v[v])
            ys = [100 * fnum(lrs_by_v[v][x]["final_val_acc"]) for x in xs]
            ax.plot(xs, ys, "o-", color=colors[v], label=LABEL[v])
            if v in S.best:
                ax.plot([S.best[v]], [100 * fnum(lrs_by_v[v][S.best[v]]["final_val_acc"])], "*",
                        ms=16, mfc="none", mec=colors[v])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("validation accuracy at the last step (%)")
        ax.set_title(f"the sweep: one run per point (seed {sw[0]['seed']}), "
                     f"{int(fnum(sw[0]['steps']))} steps; star: the rate kept", fontsize=9)
        ys_all = [100 * fnum(r["final_val_acc"]) for r in sw if math.isfinite(fnum(r["final_val_acc"]))]
        ax.set_ylim(max(min(ys_all), 50) - 1, max(ys_all) + 1)
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
    write_generated(out, sec, order)
    print(f"analyze.py: wrote {out}/report.md and {len(figs)} figures", file=sys.stderr)


# ---------------------------------------------------------------- the second study

def init_of(r):
    """The run's --init: the run id names it when it is not the default."""
    return "torch" if "-torchinit-" in r["run_id"] else "he"


def test_at_best(S, r):
    """Test accuracy at the evaluation with the best validation accuracy (the
    first on ties): --test-at-best put it in that row of convergence.csv."""
    cs = sorted(S.conv[r["run_id"]], key=lambda c: int(c["step"]))
    if not cs:
        return float("nan")
    best = max(range(len(cs)), key=lambda k: (fnum(cs[k]["val_acc"]), -k))
    return fnum(cs[best]["test_acc"])


def plots2(S, A, C, out, targets):
    """PROTOCOL.md's plots of the second study (fixed before its runs): phase A's
    validation accuracy and training loss against the step, log x, median and
    interquartile band over seeds, one panel per initialisation; phase C's test
    accuracy at the best validation point, every seed a point, the median a bar."""
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"adam": "C0", "amo": "C3"}
    figs = []
    for col, fname, ylab in (("val_acc", "confirm_val_acc.png", "validation accuracy (%)"),
                             ("loss", "confirm_train_loss.png",
                              "training loss (label-smoothed, mean of 10 steps)")):
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True, sharey=True)
        for ax, init in zip(axes, ("he", "torch")):
            for v in ("amo", "adam"):
                rs = sorted((r for r in A if variant(r) == v and init_of(r) == init
                             and r["schedule"] == "constant"), key=lambda r: int(r["seed"]))
                if not rs:
                    continue
                plot_band(ax, S, rs, col, colors[v], f"{LABEL[v]}, lr 1e-3 ({len(rs)} seeds)",
                          10 if col == "loss" else 0)
            if col == "val_acc":
                for tg in targets:
                    ax.axhline(100 * tg, color="k", ls=":", lw=0.8)
                    ax.text(110, 100 * tg + 0.2, f"target {100 * tg:g}%", fontsize=7)
            ax.set_title(f"--init {init}: median, interquartile band over seeds", fontsize=9)
            ax.set_xscale("log")
            ax.set_xlim(90 if col == "val_acc" else 9, 1.05 * int(A[0]["steps"]))
            ax.set_xlabel("step (log scale)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="lower right" if col == "val_acc" else "upper right")
        axes[0].set_ylabel(ylab)
        if col == "loss":
            axes[0].set_ylim(top=2.5)
        fig.suptitle("phase A: the paper's defaults, constant rate, Fashion-MNIST ResNet-18 w1/8, "
                     "batch 128", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(out, fname), dpi=110)
        plt.close(fig)
        figs.append(fname)
    # the update size over the first 500 steps: the bias-correction transient
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    t = np.arange(1, 501)
    for init, ls in (("he", "-"), ("torch", "--")):
        u = {}
        for v in ("amo", "adam"):
            rs = [r for r in A if variant(r) == v and init_of(r) == init]
            ys = [[fnum(x["update_norm"]) for x in S.steps[r["run_id"]][:500]] for r in rs]
            ys = [y for y in ys if len(y) == 500]
            if ys:
                u[v] = np.array(ys)
                axes[0].plot(t, np.median(u[v], 0), ls, color=colors[v],
                             label=f"{LABEL[v]}, --init {init} ({len(ys)} seeds)")
        if len(u) == 2 and len(u["amo"]) == len(u["adam"]):
            axes[1].plot(t, np.median(u["amo"] / u["adam"], 0), ls, color="C3",
                         label=f"AMO / Adam, --init {init}, median over seeds")
    axes[1].plot(t, (1 - BETA ** t) / np.sqrt(1 - GAMMA ** t), "k:",
                 label="(1 - beta^t) / sqrt(1 - gamma^t)")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("||update||_2, median over seeds")
    axes[1].set_ylabel("ratio of update norms")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("step (log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("phase A, lr 1e-3: the update size over the first 500 steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "confirm_update_size.png"), dpi=110)
    plt.close(fig)
    figs.append("confirm_update_size.png")
    if C:
        by = defaultdict(list)
        for r in C:
            n = f"{variant(r)} {fmt_lr(fnum(r['lr']))}"
            if int(fnum(r["warmup"])) > 0:
                n += f"\nwarm-up {int(fnum(r['warmup']))}"
            if variant(r) == "adam" and r["clip"] == "1":
                n += f"\nclip {fnum(r['tau']):g}"
            by[n].append(100 * test_at_best(S, r))
        names = sorted(by)
        fig, ax = plt.subplots(figsize=(10, 4.2))
        for k, n in enumerate(names):
            ax.scatter([k] * len(by[n]), by[n], s=16, color="C3" if n.startswith("amo") else "C0")
            ax.hlines(median(by[n]), k - 0.3, k + 0.3, color="k")
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel("test accuracy at the best validation point (%)")
        ax.set_title("phase C (exploratory), cosine schedule to 0: every seed a point, the median "
                     "a bar", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "explore_test_at_best.png"), dpi=110)
        plt.close(fig)
        figs.append("explore_test_at_best.png")
    return figs


def acc_verdict(p_hold, p_fail, hi):
    """PROTOCOL.md's H1 rule on (adjusted or plain) one-sided p-values."""
    return ("holds" if p_hold < ALPHA else "does not hold (AMO worse)" if p_fail < ALPHA else
            "not supported" + ("; a 1-point gap excluded" if hi < 0.01 else ""))


def speed_verdict(g, p_hold, p_fail, cens):
    """PROTOCOL.md's H2 rule: g the geometric-mean step ratio, cens the most
    censored seeds in either arm."""
    return ("cannot be decided: not reached" if cens > 2 else
            "holds" if g <= SPEEDUP and p_hold < ALPHA else
            f"does not hold (ratio <= {SPEEDUP:g} excluded)" if p_fail < ALPHA else
            "not supported")


def report2(out):
    """PROTOCOL.md's analysis of the second study: phase A (confirm/), the
    ablation with phase B (through `report`), phase C (explore/) when there;
    writes OUT/report2.md.  Verdicts follow PROTOCOL.md, nothing else."""
    S = Study(out)
    A = [r for r in S.sum.values() if r["phase"] == "confirm"]
    if not A:
        sys.exit(f"analyze.py: no runs under {out}/confirm (run.sh confirm)")
    budget = int(A[0]["steps"])
    targets = [fnum(A[0][f"target{k}"]) for k in (1, 2, 3)]
    lines = [f"# Generated by results/study/analyze.py report2 from the CSVs; do not edit\n",
             f"The second study (PROTOCOL.md): {len(A)} runs in phase A, {budget} steps each.\n"]

    def arm(v, init):
        return {r["seed"]: r for r in A if variant(r) == v and init_of(r) == init
                and r["schedule"] == "constant"}

    # determinism: phase A's AMO/he runs against the first study's (seeds 1-3)
    first = {r["seed"]: r for r in S.main_runs("amo", DEFAULT_LR["amo"])}
    mine = arm("amo", "he")
    same = [sd for sd in sorted(set(first) & set(mine), key=int)
            if first[sd]["final_val_acc"] == mine[sd]["final_val_acc"]]
    diff = sorted(set(first) & set(mine) - set(same), key=int)
    sec = {}
    lines.append(f"Reproduction check: phase A's AMO/he runs give the first study's final "
                 f"validation accuracy at seeds {', '.join(same) or 'none'}"
                 + (f"; DIFFERENT at seeds {', '.join(diff)} (a deviation to report)" if diff else "")
                 + ".\n")
    res, fam = {}, []
    for init in ("he", "torch"):
        a, b = arm("amo", init), arm("adam", init)
        seeds = sorted(set(a) & set(b), key=int)
        if len(seeds) < 2:
            continue
        for metric, f in (("test acc at best val", lambda r: test_at_best(S, r)),
                          ("test acc at the end", lambda r: fnum(r["final_test_acc"]))):
            d = [f(a[sd]) - f(b[sd]) for sd in seeds]
            res[("acc", init, metric)] = (d, t_interval(d), t_pvalue(d, 0, "greater"),
                                          t_pvalue(d, 0, "less"))
        for t in targets:
            sa = [S.steps_to(a[sd], t) for sd in seeds]
            sb = [S.steps_to(b[sd], t) for sd in seeds]
            lr_ = log_ratios(sa, sb)
            cens = max(sum(x > budget for x in sa), sum(x > budget for x in sb))
            res[("speed", init, t)] = (sa, sb, lr_, ratio_interval(lr_),
                                       t_pvalue(lr_, 0, "less"),
                                       t_pvalue(lr_, math.log(SPEEDUP), "greater"), cens)
    q = None
    if ("speed", "he", targets[0]) in res and ("speed", "torch", targets[0]) in res:
        he, to = arm("amo", "he"), arm("amo", "torch")
        seeds = sorted(set(he) & set(to) & set(arm("adam", "he")) & set(arm("adam", "torch")),
                       key=int)
        r_he = dict(zip(sorted(set(arm("amo", "he")) & set(arm("adam", "he")), key=int),
                        res[("speed", "he", targets[0])][2]))
        r_to = dict(zip(sorted(set(arm("amo", "torch")) & set(arm("adam", "torch")), key=int),
                        res[("speed", "torch", targets[0])][2]))
        q = [r_he[sd] - r_to[sd] for sd in seeds if sd in r_he and sd in r_to]
    # H3 has no verdict where either init's 85% target is censored beyond the rule
    q_cens = max((res[("speed", init, targets[0])][6] for init in ("he", "torch")
                  if ("speed", init, targets[0]) in res), default=0)
    # the confirmatory family: H1, H2 x 3, H3 (Holm, each direction); a member
    # without a verdict by the censoring rule enters as p = 1 (holm: NaN)
    keys = [("acc", "he", "test acc at best val")] + [("speed", "he", t) for t in targets]

    def fam_p(k, j):
        if k not in res or (k[0] == "speed" and res[k][6] > 2):
            return float("nan")
        return res[k][j]
    p_hold = [fam_p(k, 2 if k[0] == "acc" else 4) for k in keys] + \
        [t_pvalue(q, 0, "less") if q and len(q) > 1 and q_cens <= 2 else float("nan")]
    p_fail = [fam_p(k, 3 if k[0] == "acc" else 5) for k in keys] + [float("nan")]
    ah, af = holm(p_hold), holm(p_fail)
    rows = []
    for k, ph, pf in zip(keys, ah, af):
        if k not in res:
            continue
        if k[0] == "acc":
            d, (m, lo, hi), _, _ = res[k]
            rows.append(["H1: AMO beats Adam in accuracy (he)", k[2],
                         f"{100 * m:+.2f} points, 95% [{100 * lo:+.2f}, {100 * hi:+.2f}]",
                         f"{ph:.3f} / {pf:.3f}", acc_verdict(ph, pf, hi)])
        else:
            sa, sb, lr_, (g, lo, hi), _, _, cens = res[k]
            rows.append([f"H2: 25% faster (he), {100 * k[2]:g}%", "steps AMO / Adam",
                         f"ratio {g:.2f}, 95% [{lo:.2f}, {hi:.2f}]", f"{ph:.3f} / {pf:.3f}",
                         speed_verdict(g, ph, pf, cens)])
    if q and len(q) > 1:
        g, lo, hi = ratio_interval(q)
        ver = ("cannot be decided: not reached" if q_cens > 2 else
               "depends on the initialisation" if ah[-1] < ALPHA else
               "does not depend on the initialisation" if lo >= 0.8 and hi <= 1.25 else
               "undecided")
        rows.append([f"H3: the early speed-up is the initialisation ({100 * targets[0]:g}%)",
                     "ratio(he) / ratio(torch)", f"{g:.2f}, 95% [{lo:.2f}, {hi:.2f}]",
                     f"{ah[-1]:.3f} / -", ver])
    nseeds = {init: len(set(arm("amo", init)) & set(arm("adam", init))) for init in ("he", "torch")}
    sec["claims2"] = (f"Phase A: {nseeds['he']} paired seeds at --init he, {nseeds['torch']} at "
                      f"--init torch. p: Holm-adjusted, 'holds' direction / 'does not hold' "
                      f"direction.\n\n" +
                      table(["claim", "metric", "estimate", "p (Holm)", "verdict"], rows))
    lines.append("## Confirmatory family (Holm, 5%)\n\n" + sec["claims2"] + "\n")
    rows = []
    for k, v in sorted(res.items(), key=lambda kv: str(kv[0])):
        if k[0] == "acc":
            d, (m, lo, hi), pu, pd = v
            rows.append([k[1], k[2], ", ".join(f"{100 * x:+.2f}" for x in d),
                         f"{100 * m:+.2f} points [{100 * lo:+.2f}, {100 * hi:+.2f}]",
                         f"{pu:.3f} / {pd:.3f}", acc_verdict(pu, pd, hi)])
        else:
            sa, sb, lr_, (g, lo, hi), pu, pd, cens = v
            rows.append([k[1], f"steps to {100 * k[2]:g}%",
                         " ".join(f"{math.exp(x):.2f}" for x in lr_),
                         f"ratio {g:.2f} [{lo:.2f}, {hi:.2f}]", f"{pu:.3f} / {pd:.3f}",
                         speed_verdict(g, pu, pd, cens)])
    sec["phaseA"] = ("p: unadjusted, 'holds' direction / 'does not hold' direction (accuracy: "
                     "AMO worse; speed: a ratio of 0.8 or less excluded); verdicts by the same "
                     "rules as the family's, without its adjustment.\n\n" +
                     table(["init", "metric", "per seed (AMO - Adam; ratio)",
                            "mean, 95% interval", "p", "verdict (unadjusted)"], rows))
    lines.append("## Every comparison of phase A (unadjusted p)\n\n" + sec["phaseA"] + "\n")
    # phase C (exploratory)
    C = [r for r in S.sum.values() if r["phase"] == "explore"]
    if C:
        import numpy as np
        from scipy import stats

        def name(r):
            n = f"{variant(r)} lr {fmt_lr(fnum(r['lr']))}"
            if int(fnum(r["warmup"])) > 0:
                n += f" warm-up {int(fnum(r['warmup']))}"
            if variant(r) == "adam" and r["clip"] == "1":
                n += f" clip {fnum(r['tau']):g}"
            return n
        by = defaultdict(dict)
        for r in C:
            by[name(r)][r["seed"]] = r
        ref = by.get(f"amo lr {fmt_lr(DEFAULT_LR['amo'])}", {})
        at_best = lambda r: test_at_best(S, r)
        at_end = lambda r: fnum(r["final_test_acc"])

        def iqr(xs):
            q1, med, q3 = np.percentile(100 * np.array(xs), [25, 50, 75])
            return f"{med:.2f} [{q1:.2f}, {q3:.2f}]"

        def paired(x, y, f):
            """x - y over their common seeds: mean, 95% t-interval, two-sided p (unadjusted)"""
            seeds = sorted(set(x) & set(y), key=int)
            d = [f(x[sd]) - f(y[sd]) for sd in seeds]
            if len(d) < 2:
                return "-"
            m, lo, hi = t_interval(d)
            p = stats.ttest_1samp(d, 0).pvalue
            return f"{100 * m:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}], p {p:.2g} (n {len(d)})"

        def steps(rs, t):
            # a median that needs a run which never got there is not known: "-"
            st = sorted(S.steps_to(r, t) for r in rs)
            reached = sum(x <= S.budget(rs[0]) for x in st)
            known = st[len(st) // 2] <= S.budget(rs[0])
            return (f"{median(st):g}" if known else "-") + f" ({reached}/{len(rs)})"
        rows = []
        for n, rs in sorted(by.items()):
            v = list(rs.values())
            # the protocol compares every Adam variant with cosine AMO 1e-3; the
            # AMO 3e-3 row's comparison is beside the protocol, and says so
            extra = " (beside the protocol)" if variant(v[0]) == "amo" and rs is not ref else ""
            rows.append([n, len(rs), iqr([at_best(r) for r in v]), iqr([at_end(r) for r in v]),
                         "-" if rs is ref else paired(rs, ref, at_best) + extra,
                         "-" if rs is ref else paired(rs, ref, at_end) + extra,
                         " / ".join(steps(v, t) for t in targets)])
        sec["phaseC"] = table(["variant (cosine)", "seeds", "test % at best val, median [IQR]",
                               "test % at the end, median [IQR]",
                               "minus cosine AMO 1e-3, at best val",
                               "minus cosine AMO 1e-3, at the end",
                               "median steps to " + " / ".join(f"{100 * t:g}" for t in targets)
                               + "% (runs that reached it)"], rows)
        sec["phaseC"] = ("Differences in test accuracy points, paired by seed: mean [95% "
                         "t-interval], two-sided p, unadjusted (exploratory).\n\n" + sec["phaseC"])
        # cosine against constant for the defaults pair (phase A's he runs, same seeds)
        rows = []
        for v in ("amo", "adam"):
            cos = by.get(f"{v} lr {fmt_lr(DEFAULT_LR[v])}", {})
            const = arm(v, "he")
            rows.append([f"{v} lr {fmt_lr(DEFAULT_LR[v])}", paired(cos, const, at_best),
                         paired(cos, const, at_end)])
        # post hoc: chosen after the table above was read (PROTOCOL.md, deviation 8);
        # the variants by the first table's names
        adam = f"adam lr {fmt_lr(DEFAULT_LR['adam'])}"
        post = [(f"adam lr {fmt_lr(1e-2)}", f"amo lr {fmt_lr(3e-3)}"),
                (f"adam lr {fmt_lr(3e-3)}", f"amo lr {fmt_lr(3e-3)}"),
                (f"{adam} warm-up 215", adam), (f"{adam} clip 1", adam)]
        post = [(f"{x} minus {y}", by.get(x, {}), by.get(y, {})) for x, y in post]
        post_rows = [[n, paired(x, y, at_best), paired(x, y, at_end)] for n, x, y in post if x and y]
        sec["phaseC"] += ("\n\nPost hoc (chosen after reading the table above; unadjusted): "
                          "test accuracy in points, mean [95% t-interval], two-sided p:\n\n" +
                          table(["comparison", "at best validation", "at the end"], post_rows))
        sec["phaseC"] += ("\n\nCosine minus constant schedule for the defaults pair (he init; the "
                          "constant runs are phase A's at the same seeds), test accuracy "
                          "in points, mean [95% t-interval], two-sided p (unadjusted):\n\n" +
                          table(["variant", "at best validation", "at the end"], rows))
        lines.append("## Phase C, exploratory (cosine schedule; no verdicts)\n\n" + sec["phaseC"]
                     + "\n")
    else:
        sec["phaseC"] = "(phase C has no runs yet)"
    figs = plots2(S, A, C, out, targets)
    lines.append("## Figures\n\n" + "\n".join(f"![{f}]({f})" for f in figs) + "\n")
    sec["figures2"] = "\n".join(f"- [{f}](study/{f})" for f in figs)
    sec["repro2"] = lines[2].strip()
    with open(os.path.join(out, "report2.md"), "w") as f:
        f.write("\n".join(lines))
    write_generated(out, sec, list(sec))
    print(f"analyze.py: wrote {out}/report2.md", file=sys.stderr)


if __name__ == "__main__":
    cmds = {"best-lr": best_lr, "best-two": best_two, "sweep-extend": sweep_extend,
            "report": report, "report2": report2}
    nargs = 4 if sys.argv[1:2] == ["sweep-extend"] else 3
    if len(sys.argv) != nargs or sys.argv[1] not in cmds:
        sys.exit("usage: analyze.py best-lr|best-two|report|report2 OUT\n"
                 "       analyze.py sweep-extend OUT 'variant lr lr ...;variant lr ...'")
    cmds[sys.argv[1]](*sys.argv[2:])
