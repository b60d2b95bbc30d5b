#!/bin/sh
# bf16 moments against fp32 moments in the main job (harness/train_cmd.c,
# hx_cmd_default: AMO with its defaults, Fashion-MNIST, ResNet-18 at width
# 1/4, batch 128, 3 epochs, evaluations every 100 steps), seeds 1, 2, 3,
# one thread each, the fp32 and bf16 runs of a seed side by side.
#     results/kernels/bf16-convergence/run.sh [OUT]   (repository root)
# Runs go to OUT/fp32 and OUT/bf16 (per-step CSVs removed afterwards); then
# prints, and keeps in OUT/accuracy.txt, the final test accuracies and the
# paired 95% t-interval of bf16 - fp32 (t with 2 degrees of freedom, 4.303).
# Environment: AMO_BENCH (./build/harness/amo-bench).
set -eu
OUT=${1:-results/kernels/bf16-convergence}
B=${AMO_BENCH:-./build/harness/amo-bench}
mkdir -p "$OUT/fp32" "$OUT/bf16"
for s in 1 2 3; do
    for st in fp32 bf16; do
        "$B" train --optimizer amo --width 0.25 --epochs 3 --eval-every 100 --state "$st" \
            --seed "$s" --threads 1 --out "$OUT/$st" --quiet >"$OUT/$st/log_seed$s.txt" 2>&1 &
    done
    wait
done
for st in fp32 bf16; do
    "$B" combine --out "$OUT/$st" >/dev/null
    rm -f "$OUT/$st"/runs/*/steps.csv "$OUT/$st/steps.csv" # per-step timings: not needed here
    find "$OUT/$st" -name 'log_seed*.txt' -empty -delete
done
# final_test_acc by seed, from each combined summary.csv
acc() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                 { print $c["seed"], $c["final_test_acc"] }' "$1" | sort -n; }
acc "$OUT/fp32/summary.csv" >"$OUT/.fp32"
acc "$OUT/bf16/summary.csv" >"$OUT/.bf16"
join "$OUT/.fp32" "$OUT/.bf16" | awk '
    BEGIN { printf "seed  fp32 test acc  bf16 test acc  bf16 - fp32\n" }
    { n++; d[n] = $3 - $2; sum += d[n]; printf "%4d  %13.4f  %13.4f  %+11.4f\n", $1, $2, $3, d[n] }
    END {
        mean = sum / n
        for (k = 1; k <= n; k++) sq += (d[k] - mean) ^ 2
        sd = sqrt(sq / (n - 1)); half = 4.303 * sd / sqrt(n) # t(0.975, 2 dof), for n = 3
        printf "paired difference bf16 - fp32 over %d seeds: mean %+.4f, sd %.4f, 95%% t-interval (2 dof, t = 4.303) [%+.4f, %+.4f]\n",
               n, mean, sd, mean - half, mean + half
    }' | tee "$OUT/accuracy.txt"
rm -f "$OUT/.fp32" "$OUT/.bf16"
