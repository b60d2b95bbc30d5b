#!/bin/sh
# Session 10's supplement: more seeds of run.sh's comparison (the main job's
# settings, AMO, fp32 against bf16 moments, one thread each, the two runs of
# a seed side by side), seeds 6, 7, ... in order, a new pair started only
# while the clock is before DEADLINE (UTC, HH:MM; a cut blind to the
# results), into OUT/seeds6+/{fp32,bf16}.  Then prints, and keeps in
# OUT/seeds6+/intervals.txt, the paired 95% t-intervals of bf16 - fp32 over
# seeds 1-3 (the issue's test), 1-5 and every seed run so far.
#     DEADLINE=23:05 results/kernels/bf16-convergence/run_seeds.sh [OUT]
# Environment: AMO_BENCH (./build/harness/amo-bench), FIRST (6).
set -eu
OUT=${1:-results/kernels/bf16-convergence}
B=${AMO_BENCH:-./build/harness/amo-bench}
DEADLINE=${DEADLINE:?DEADLINE=HH:MM (UTC): no pair starts after it}
case $DEADLINE in
[0-2][0-9]:[0-5][0-9]) ;;
*) echo "run_seeds.sh: DEADLINE=$DEADLINE: expected HH:MM" >&2; exit 2 ;;
esac
until=1$(echo "$DEADLINE" | tr -d :) # 1HHMM: no leading zero for -lt
D="$OUT/seeds6+"
mkdir -p "$D/fp32" "$D/bf16"
s=${FIRST:-6}
while [ "1$(date -u +%H%M)" -lt "$until" ]; do
    date -u +"%Y-%m-%dT%H:%M:%SZ seed $s starts" >>"$D/log.txt"
    for st in fp32 bf16; do
        "$B" train --optimizer amo --width 0.25 --epochs 3 --eval-every 100 --state "$st" \
            --seed "$s" --threads 1 --out "$D/$st" --quiet >"$D/$st/log_seed$s.txt" 2>&1 &
    done
    wait
    s=$((s + 1))
done
date -u +"%Y-%m-%dT%H:%M:%SZ deadline $DEADLINE reached; seeds ${FIRST:-6}-$((s - 1))" >>"$D/log.txt"
for st in fp32 bf16; do
    "$B" combine --out "$D/$st" >/dev/null
    rm -f "$D/$st"/runs/*/steps.csv "$D/$st/steps.csv" # per-step timings: not needed here
    find "$D/$st" -name 'log_seed*.txt' -empty -delete
done
cd "$OUT" && /usr/bin/python3 - <<'PY' | tee "seeds6+/intervals.txt"
import csv, math, statistics
from scipy import stats
def final(*fs):
    return {int(r['seed']): float(r['final_test_acc']) for f in fs for r in csv.DictReader(open(f))}
fp32 = final('fp32/summary.csv', 'seeds4-5/fp32/summary.csv', 'seeds6+/fp32/summary.csv')
bf16 = final('bf16/summary.csv', 'seeds4-5/bf16/summary.csv', 'seeds6+/bf16/summary.csv')
seeds = sorted(set(fp32) & set(bf16))
print('seed  final test accuracy: fp32  bf16  bf16 - fp32 (points)')
for s in seeds:
    print(f'{s:4d}  {fp32[s]:.4f}  {bf16[s]:.4f}  {(bf16[s] - fp32[s]) * 100:+.2f}')
def ci(ss):
    d = [bf16[s] - fp32[s] for s in ss]
    m, sd = statistics.mean(d), statistics.stdev(d)
    h = stats.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d))
    return (f'{m * 100:+.2f} points [{(m - h) * 100:+.2f}, {(m + h) * 100:+.2f}] '
            f'(95% paired t-interval, {len(d) - 1} dof, sd {sd * 100:.2f})'), m - h, m + h
for name, ss in (('seeds 1-3', [1, 2, 3]), ('seeds 1-5', [1, 2, 3, 4, 5]),
                 (f'seeds 1-{seeds[-1]}', seeds)):
    text, lo, hi = ci(ss)
    print(f'final test accuracy, bf16 - fp32, {name}: {text}: zero {"inside" if lo <= 0 <= hi else "outside"}')
PY
