#!/bin/sh
# The 64M-parameter comparison, robust to a shared host: each round runs our
# AMO/Adam kernels with their limit loops interleaved in time (Google
# Benchmark's random interleaving, 9 repetitions: a kernel and its limit see
# the same contention) and then PyTorch's Adam, for 1 and 2 threads.
#     results/kernels/run_64m.sh [OUT]     (repository root, release build in build/)
# Environment: AMO_BENCH, PYTHON (/usr/bin/python3 with python3-torch),
# ANCHORS (../shared/anchors), ROUNDS (3).  OUT: results/kernels/interleaved-64m.
# Prints (and keeps in OUT/rounds.txt) each round's figures, then their medians.
set -eu
OUT=${1:-results/kernels/interleaved-64m}
B=${AMO_BENCH:-./build/harness/amo-bench}
PY=${PYTHON:-/usr/bin/python3}
A=${ANCHORS:-../shared/anchors}
ROUNDS=${ROUNDS:-3}
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for t in 1 2; do
        "$B" kernels --arch avx512 --threads "$t" \
            --benchmark_filter='^(amo|amo_bf16|adam)/.*n:67108864/' \
            --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true \
            --benchmark_display_aggregates_only=true --benchmark_min_time=0.2 \
            --out "$OUT/round$r" >/dev/null
        "$PY" "$A/torch_adam.py" --numel 67108864 --tensors 1 --threads "$t" \
            >"$OUT/round$r/torch_t$t.txt" 2>&1
    done
    r=$((r + 1))
done
# per round and thread count: fraction of the limit (Gparam/s), and x PyTorch
for t in 1 2; do
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        torch=$(sed -n 's/.* \([0-9.]*\) Gparam\/s.*/\1/p' "$OUT/round$r/torch_t$t.txt")
        awk -F, -v t="$t" -v r="$r" -v pt="$torch" 'NR > 1 {
            printf "threads %s round %s %-9s %.2f of limit, %.3f Gparam/s, %.1fx PyTorch (%s)\n",
                   t, r, $1, $10, $7, $7 / pt, pt }' "$OUT/round$r/kernels_avx512_t$t.csv"
        r=$((r + 1))
    done
done >"$OUT/rounds.txt"
cat "$OUT/rounds.txt"
# the median over the rounds of each kernel's fraction and multiple
median() { awk '{ a[NR] = $1 } END { print (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2 }'; }
for t in 1 2; do
    for k in amo amo_bf16 adam; do
        f=$(awk -v t="$t" -v k="$k" '$2 == t && $5 == k { print $6 }' "$OUT/rounds.txt" | sort -g)
        x=$(awk -v t="$t" -v k="$k" '$2 == t && $5 == k { sub("x", "", $11); print $11 }' \
            "$OUT/rounds.txt" | sort -g)
        printf 'threads %s %-9s median of %s rounds: %.2f of limit, %.1fx PyTorch\n' "$t" "$k" \
            "$ROUNDS" "$(echo "$f" | median)" "$(echo "$x" | median)"
    done
done
