#!/bin/sh
# Session 9's ceiling experiment for issue 20 (ceiling.c says what each row
# is): one sitting per thread count at 64M parameters, 4 KiB and huge pages
# side by side.  Needs a CPU with AVX-512 (F, BW, DQ, VL), AVX512_BF16 and
# VAES, and the release build in build/.  From the repository root:
#     sh results/kernels/bf16-ceiling/run.sh OUTDIR [ROUNDS]
set -eu
OUT=${1:?usage: run.sh OUTDIR [ROUNDS]}
ROUNDS=${2:-41}
D=$(dirname "$0")
BIN=${TMPDIR:-/tmp}/amo-bf16-ceiling
for f in avx512f avx512bw avx512dq avx512vl avx512_bf16 vaes; do
    grep -qw "$f" /proc/cpuinfo || { echo "run.sh: this CPU has no $f" >&2; exit 1; }
done
cc -O3 -std=c11 -fopenmp -fno-math-errno -mavx2 -mfma -mavx512f -mavx512bw -mavx512dq \
    -mavx512vl -mavx512bf16 -maes -mvaes -I. -Ibuild "$D/ceiling.c" -o "$BIN" \
    -Lbuild -lamo -lm -Wl,-rpath,"$(pwd)/build"
mkdir -p "$OUT"
dirty=$(git diff --quiet HEAD -- || echo " (uncommitted changes)")
for t in 1 2; do
    f="$OUT/t$t.txt"
    {
        date -u +"%Y-%m-%dT%H:%M:%SZ $(git rev-parse --short HEAD)$dirty"
        echo "ceiling.c sha256 $(sha256sum <"$D/ceiling.c" | cut -d' ' -f1)"
        echo "libamo built from (build/common/amo_build.h): $(sed -n 's/^#define AMO_BUILD_COMMIT "\(.*\)"$/\1/p' build/common/amo_build.h)"
        grep -m1 "model name" /proc/cpuinfo
        uptime
    } >"$f"
    OMP_PROC_BIND=spread OMP_PLACES=cores "$BIN" 67108864 "$ROUNDS" "$t" >>"$f"
    uptime >>"$f"
    cat "$f"
done
