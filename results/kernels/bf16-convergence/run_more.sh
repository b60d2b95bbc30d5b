#!/bin/sh
# The supplements to run.sh: seeds 4 and 5 (fp32, bf16, and bf16 with the
# build before this change, AMO_BENCH_BEFORE), with the test set at every
# evaluation, into OUT/seeds4-5/{fp32,bf16,bf16-before}; and seeds 1-3 of the
# build before, into OUT/bf16-before.  Two runs at a time, one thread each.
#     AMO_BENCH_BEFORE=path/to/old/amo-bench results/kernels/bf16-convergence/run_more.sh [OUT]
# Then prints, and keeps in OUT/all-seeds.txt, the paired t-intervals.
set -eu
OUT=${1:-results/kernels/bf16-convergence}
N=${AMO_BENCH:-./build/harness/amo-bench}
O=${AMO_BENCH_BEFORE:?the build before this change}
run() { # binary state dir seed [flag]
    "$1" train --optimizer amo --width 0.25 --epochs 3 --eval-every 100 --state "$2" --seed "$4" \
        --threads 1 ${5:-} --out "$OUT/$3" --quiet >/dev/null 2>&1; }
run "$O" bf16 bf16-before 1 & run "$O" bf16 bf16-before 2 & wait
run "$O" bf16 bf16-before 3 & run "$N" fp32 seeds4-5/fp32 4 --test-every-eval & wait
run "$N" bf16 seeds4-5/bf16 4 --test-every-eval & run "$O" bf16 seeds4-5/bf16-before 4 --test-every-eval & wait
run "$N" fp32 seeds4-5/fp32 5 --test-every-eval & run "$N" bf16 seeds4-5/bf16 5 --test-every-eval & wait
run "$O" bf16 seeds4-5/bf16-before 5 --test-every-eval
for d in bf16-before seeds4-5/fp32 seeds4-5/bf16 seeds4-5/bf16-before; do
    "$N" combine --out "$OUT/$d" >/dev/null
    rm -f "$OUT/$d"/runs/*/steps.csv "$OUT/$d/steps.csv"
done
cd "$OUT" && python3 - <<'PY' | tee all-seeds.txt
import csv, math, statistics
T = {2: 4.303, 4: 2.776}  # t(0.975, dof)
def final(*fs):
    return {int(r['seed']): float(r['final_test_acc']) for f in fs for r in csv.DictReader(open(f))}
def late(*dirs):  # mean validation accuracy over the evaluations from step 700 on
    out = {}
    for d in dirs:
        for r in csv.DictReader(open(d + '/convergence.csv')):
            if int(r['step']) >= 700:
                out.setdefault(int(r['seed']), []).append(float(r['val_acc']))
    return {s: statistics.mean(v) for s, v in out.items()}
acc = {k: final(k + '/summary.csv', 'seeds4-5/' + k + '/summary.csv') for k in ('fp32', 'bf16', 'bf16-before')}
lat = {k: late(k, 'seeds4-5/' + k) for k in ('fp32', 'bf16', 'bf16-before')}
print('seed  final test accuracy: fp32  bf16  bf16-before   mean val accuracy, steps 700-1287: fp32  bf16  bf16-before')
for s in range(1, 6):
    print(f'{s:4d}  {acc["fp32"][s]:.4f}  {acc["bf16"][s]:.4f}  {acc["bf16-before"][s]:.4f}'
          f'   {lat["fp32"][s]:.4f}  {lat["bf16"][s]:.4f}  {lat["bf16-before"][s]:.4f}')
def ci(x, a, b, seeds):
    d = [x[a][s] - x[b][s] for s in seeds]
    m, sd = statistics.mean(d), statistics.stdev(d)
    h = T[len(d) - 1] * sd / math.sqrt(len(d))
    return f'{m * 100:+.2f} points [{(m - h) * 100:+.2f}, {(m + h) * 100:+.2f}] (t, {len(d) - 1} dof)'
for what, x in (('final test accuracy', acc), ('mean val accuracy 700-1287', lat)):
    for a, b in (('bf16', 'fp32'), ('bf16-before', 'fp32'), ('bf16', 'bf16-before')):
        print(f'{what}, {a} - {b}: seeds 1-3 {ci(x, a, b, [1, 2, 3])}; seeds 1-5 {ci(x, a, b, [1, 2, 3, 4, 5])}')
PY
