#!/bin/sh
# bf16-state AMO and Adam against their fp32-state kernels at 64M parameters,
# side by side (issue 20).  Each round runs, for 1 and 2 threads, the four
# kernels and their limit loops in one `amo-bench kernels` process with
# Google Benchmark's random interleaving (9 repetitions: the kernels see the
# same contention), and, when AMO_BENCH_BEFORE names an older build, the
# same for it right after (adam_bf16 is new: that build has no such row).
#     results/kernels/run_bf16.sh OUT     (repository root, release build in build/)
# Environment: AMO_BENCH (./build/harness/amo-bench), AMO_BENCH_BEFORE (none),
# ROUNDS (3).  Prints, and keeps in OUT/rounds.txt, each round's Gparam/s,
# fraction of the limit and bf16 / fp32 ratio, then the medians.
set -eu
OUT=${1:?usage: run_bf16.sh OUT}
B=${AMO_BENCH:-./build/harness/amo-bench}
BEFORE=${AMO_BENCH_BEFORE:-}
ROUNDS=${ROUNDS:-3}
run() { # binary, threads, out
    "$1" kernels --arch avx512 --threads "$2" \
        --benchmark_filter='^(amo|amo_bf16|adam|adam_bf16)/.*n:67108864/' \
        --benchmark_repetitions=9 --benchmark_enable_random_interleaving=true \
        --benchmark_display_aggregates_only=true --benchmark_min_time=0.2 \
        --out "$3" >/dev/null 2>"$3.t$2.log"
}
mkdir -p "$OUT"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for t in 1 2; do
        run "$B" "$t" "$OUT/round$r"
        [ -n "$BEFORE" ] && run "$BEFORE" "$t" "$OUT/before-round$r"
    done
    r=$((r + 1))
done
# per build, round and thread count: each kernel's Gparam/s and fraction of
# its limit, and the bf16 / fp32 ratios of the same run
for d in "$OUT"/round* "$OUT"/before-round*; do
    [ -d "$d" ] || continue
    for t in 1 2; do
        awk -F, -v t="$t" -v d="$(basename "$d")" 'NR > 1 { g[$1] = $7; f[$1] = $10 }
            END {
                printf "%s threads %s:", d, t
                split("amo amo_bf16 adam adam_bf16", ks, " ")
                for (i = 1; i <= 4; i++)
                    if (ks[i] in g) printf " %s %.3f (%.2f of limit)", ks[i], g[ks[i]], f[ks[i]]
                if (g["amo"] > 0 && g["amo_bf16"] > 0) printf "; amo_bf16/amo %.3f", g["amo_bf16"] / g["amo"]
                if (g["adam"] > 0 && g["adam_bf16"] > 0) printf "; adam_bf16/adam %.3f", g["adam_bf16"] / g["adam"]
                printf "\n"
            }' "$d/kernels_avx512_t$t.csv"
    done
done | sort >"$OUT/rounds.txt"
cat "$OUT/rounds.txt"
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (a[int((NR + 1) / 2)] + a[int(NR / 2) + 1]) / 2 }'; }
for b in round before-round; do
    for t in 1 2; do
        for k in amo_bf16/amo adam_bf16/adam; do
            m=$(grep "^$b[0-9]* threads $t:" "$OUT/rounds.txt" | sed -n "s|.*$k \([0-9.]*\).*|\1|p" | median)
            [ -n "$m" ] && printf '%s threads %s %s: median ratio %s over %s rounds\n' \
                "${b%-round}" "$t" "$k" "$m" "$ROUNDS"
        done
    done
done | sed 's/^round /after /' | tee "$OUT/medians.txt"
