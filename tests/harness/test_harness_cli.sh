#!/bin/sh
# amo-bench's command line: exit codes, messages that name the option, and a
# tiny `kernels` run whose CSV has the documented columns.
#     sh tests/test_harness_cli.sh path/to/amo-bench
# Prints one line per check and "N passed, N failed" at the end.
set -u
BENCH=${1:?usage: test_harness_cli.sh AMO_BENCH}
. "$(dirname "$0")/harness_lib.sh"

expect 0 'Usage: amo-bench' '--help' -- --help
expect 0 '^amo-bench [0-9]' '--version' -- --version
# (No command runs the main training job: minutes, not a CLI check.)
expect 2 "unknown option '--bogus'" 'unknown global option' -- --bogus
expect 2 "unknown command 'frobnicate'" 'unknown command' -- frobnicate
expect 0 'Usage: amo-bench kernels' 'kernels --help' -- kernels --help
expect 2 "unknown option '--bogus'" 'kernels: unknown option' -- kernels --bogus
expect 2 "--threads: .*'-1'" '--threads -1' -- kernels --threads -1
expect 2 "--threads: .*'abc'" '--threads abc' -- kernels --threads abc
expect 2 "--threads: .*'0'" '--threads 0' -- kernels --threads 0
expect 2 "option '--threads' needs a value" '--threads without a value' -- kernels --threads
expect 2 "--arch: unknown value 'bogus'" '--arch bogus' -- kernels --arch bogus
expect 2 "--max-n: .*'12x'" '--max-n 12x' -- kernels --max-n 12x
expect 2 "unexpected argument 'extra'" 'stray argument' -- kernels extra
expect 2 "--benchmark_format: unknown value 'xml'" 'bad Google Benchmark format' \
    -- kernels --benchmark_format=xml
expect 2 "benchmark_bogus" 'unknown Google Benchmark flag' -- kernels --benchmark_bogus=1
expect 2 "--conv-gemm: unknown value 'some'" 'throughput --conv-gemm some' \
    -- throughput --conv-gemm some
expect 2 "--conv-algo: unknown value 'fft'" 'throughput --conv-algo fft' \
    -- throughput --conv-algo fft
expect 2 "--conv-algo: unknown value 'fft'" 'train --conv-algo fft' -- train --conv-algo fft
expect 2 "no bf16 Winograd" 'throughput --bf16 --conv-algo winograd' \
    -- throughput --bf16 --conv-algo winograd
AMO_ARCH=bogus "$BENCH" kernels --max-n 64 --out "$TMP/env" >"$TMP/out" 2>&1
[ $? -eq 2 ] && grep -q 'AMO_ARCH=bogus' "$TMP/out" && ok 'bad AMO_ARCH' || bad 'bad AMO_ARCH'

# A level this CPU lacks is a usage error naming it.
case $(uname -m) in
    x86_64) missing=neon ;;
    *) missing=avx512 ;;
esac
expect 2 "--arch $missing: this CPU does not have it" "--arch $missing on $(uname -m)" \
    -- kernels --arch "$missing"

# --arch before the command (the README's `amo-bench --arch avx512`) is taken
# like the command's own.
expect 2 "--arch $missing: this CPU does not have it" "--arch $missing before train" \
    -- --arch "$missing" train --epochs 1
expect 2 "--arch: unknown level 'bogus'" '--arch bogus before train' -- --arch bogus train
expect 2 "--arch: unknown value 'bogus'|unknown level 'bogus'" '--arch bogus before kernels' \
    -- --arch bogus kernels --max-n 64 --out "$TMP/garch"
"$BENCH" --arch scalar kernels --threads 1 --max-n 64 --benchmark_filter='^sumsq/' \
    --benchmark_min_time=0.001 --out "$TMP/garch" \
    >"$TMP/out" 2>&1 && grep -q '^sumsq,scalar,1,' "$TMP/garch/kernels_scalar_t1.csv" \
    && ok '--arch scalar before kernels runs scalar only' \
    || bad '--arch scalar before kernels runs scalar only'

# Without git on PATH the build's commit says so and the script succeeds.
out=$(PATH=/nonexistent /bin/sh "$(dirname "$0")/../../common/git_commit.sh" 2>&1)
[ "$out" = "unknown (no git)" ] && ok 'git_commit.sh without git' \
    || bad "git_commit.sh without git: '$out'"

# An --out that cannot be a directory (a file in the way): refused up front.
: >"$TMP/file"
expect 2 "--out $TMP/file/sub" 'unusable --out' -- kernels --out "$TMP/file/sub" --max-n 64
expect 2 "--benchmark_out=$TMP/file/x.json" 'unusable --benchmark_out' \
    -- kernels --out "$TMP/out1" --max-n 64 --benchmark_out="$TMP/file/x.json"
expect 2 "no benchmark matches" 'filter matching nothing' \
    -- kernels --arch scalar --max-n 64 --out "$TMP/none" --benchmark_filter=nomatch

# A tiny run: one kernel and its limit, one level, the smallest sizes.
expect 0 'wrote' 'tiny kernels run' -- kernels --arch scalar --threads 1 --max-n 4096 \
    --out "$TMP/run" --benchmark_filter='^sumsq/' --benchmark_min_time=0.01
csv="$TMP/run/kernels_scalar_t1.csv"
header='kernel,isa,threads,n,bytes_per_param,seconds_per_step,gparam_per_s,gb_per_s,limit_gb_per_s,fraction_of_limit,flops_per_param,gflops,fma_peak_gflops,fraction_of_fma_peak,limit_loop'
if [ -f "$csv" ] && [ "$(head -n 1 "$csv")" = "$header" ]; then
    ok 'CSV header'
else
    bad 'CSV header'; cat "$csv" 2>/dev/null | head -3
fi
rows=$(tail -n +2 "$csv" 2>/dev/null | grep -c '^sumsq,scalar,1,')
if [ "$rows" -ge 1 ] && ! tail -n +2 "$csv" | grep -v '^sumsq,' | grep -q .; then
    ok "CSV rows ($rows, sumsq only)"
else
    bad "CSV rows: $rows sumsq rows"; cat "$csv"
fi
# every field of every row filled, fraction_of_limit positive, sumsq's limit
# the plain loop (it stores nothing: no late form)
if awk -F, 'NR > 1 { if (NF != 15) exit 1; for (i = 1; i <= NF; i++) if ($i == "") exit 1;
                     if ($10 + 0 <= 0 || $15 != "plain") exit 1 }' "$csv"; then
    ok 'CSV fields filled'
else
    bad 'CSV fields'; cat "$csv"
fi
# the flop columns by their formulas: sumsq does 2 flops a parameter (README),
# gflops = flops_per_param * gparam_per_s, the fraction = gflops / a positive peak
if awk -F, 'function off(a, b) { d = a - b; if (d < 0) d = -d; return d > 1e-4 * (b < 0 ? -b : b) }
            NR > 1 { if ($11 != 2 || $13 + 0 <= 0) exit 1
                     if (off($12, $11 * $7) || off($14, $12 / $13)) exit 1 }
            END { if (NR < 2) exit 1 }' "$csv"; then
    ok 'CSV flop columns'
else
    bad 'CSV flop columns'; cat "$csv"
fi
grep -q '^fma_peak_gflops.scalar,' "$TMP/run/kernels_scalar_t1_meta.csv" 2>/dev/null \
    && ok 'FMA peak in the metadata' || bad 'FMA peak in the metadata'
[ -s "$TMP/run/kernels_scalar_t1.json" ] && grep -q '"benchmarks"' "$TMP/run/kernels_scalar_t1.json" \
    && ok 'Google Benchmark JSON' || bad 'Google Benchmark JSON'
grep -q '^topology,' "$TMP/run/kernels_scalar_t1_meta.csv" 2>/dev/null \
    && ok 'metadata file' || bad 'metadata file'
if ls -A "$TMP/run" | grep -q '^\.'; then
    bad 'temporaries left behind'; ls -A "$TMP/run"
else
    ok 'no temporaries left'
fi

# Repetitions, with only the aggregates shown: the CSV takes the median.
expect 0 'wrote' 'run with repetitions, aggregates only' -- kernels --arch scalar \
    --threads 1 --max-n 64 --out "$TMP/rep" --benchmark_filter='^sgd_momentum/' \
    --benchmark_min_time=0.005 --benchmark_repetitions=2 --benchmark_display_aggregates_only=true
if awk -F, 'NR > 1 { n++; if ($1 != "sgd_momentum" || $6 + 0 <= 0 || $10 == "") exit 1
                     if ($15 != "plain" && $15 != "late") exit 1 }
            END { exit n == 1 ? 0 : 1 }' "$TMP/rep/kernels_scalar_t1.csv" 2>/dev/null; then
    ok 'CSV row from the median'
else
    bad 'CSV row from the median'; cat "$TMP/rep/kernels_scalar_t1.csv" 2>/dev/null
fi

# A filter that leaves out one limit loop: the CSV says which one alone ran.
expect 0 'wrote' 'kernel and its plain limit only' -- kernels --arch scalar --threads 1 \
    --max-n 64 --out "$TMP/one" --benchmark_filter='^sgd_momentum/scalar/(kernel|limit)/' \
    --benchmark_min_time=0.005
if awk -F, 'NR > 1 { n++; if ($15 != "plain-only" || $10 + 0 <= 0) exit 1 } END { exit n == 1 ? 0 : 1 }' \
    "$TMP/one/kernels_scalar_t1.csv" 2>/dev/null; then
    ok 'limit_loop plain-only'
else
    bad 'limit_loop plain-only'; cat "$TMP/one/kernels_scalar_t1.csv" 2>/dev/null
fi

# Listing runs nothing and writes nothing.  Kernels that store have both
# limit loops; sumsq, which stores nothing, only the plain one.
expect 0 'sumsq/scalar/limit/n:64' '--benchmark_list_tests' -- kernels --arch scalar \
    --max-n 64 --out "$TMP/list" --benchmark_list_tests=true
list=$("$BENCH" kernels --arch scalar --max-n 64 --out "$TMP/list" --benchmark_list_tests=true 2>&1)
if echo "$list" | grep -q '^amo_bf16/scalar/limit_late/n:64/' \
    && echo "$list" | grep -q '^amo/scalar/limit/n:64/' \
    && ! echo "$list" | grep -q '^sumsq/scalar/limit_late/'; then
    ok 'limit and limit_late listed'
else
    bad 'limit and limit_late listed'; echo "$list" | head -20
fi
if [ -z "$(ls -A "$TMP/list")" ]; then ok 'listing writes nothing'; else bad 'listing wrote files'; ls -A "$TMP/list"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
