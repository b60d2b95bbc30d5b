#!/bin/sh
# Session 8's bf16-state loop variants and same-traffic limits at 64M
# parameters, one thread (variants.c says what each row is).  Needs a CPU
# with AVX-512 (F, BW, DQ, VL), AVX512_BF16 and VAES, and the release build
# in build/.  From the repository root:
#     sh results/kernels/bf16-variants/run.sh OUT.txt [ROUNDS]
set -eu
OUT=${1:?usage: run.sh OUT.txt [ROUNDS]}
D=$(dirname "$0")
BIN=${TMPDIR:-/tmp}/amo-bf16-variants
for f in avx512f avx512bw avx512dq avx512vl avx512_bf16 vaes; do
    grep -qw "$f" /proc/cpuinfo || { echo "run.sh: this CPU has no $f" >&2; exit 1; }
done
cc -O3 -std=c11 -fno-math-errno -mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl \
    -mavx512bf16 -maes -mvaes -mprfchw -I. -Ibuild "$D/variants.c" -o "$BIN" \
    -Lbuild -lamo -Wl,-rpath,"$(pwd)/build"
# the commit, whether tracked files differ from it, and this program's hash
dirty=$(git diff --quiet HEAD -- || echo " (uncommitted changes)")
{
    date -u +"%Y-%m-%dT%H:%M:%SZ $(git rev-parse --short HEAD)$dirty"
    echo "variants.c sha256 $(sha256sum <"$D/variants.c" | cut -d' ' -f1)"
    grep -m1 "model name" /proc/cpuinfo
} >"$OUT"
"$BIN" 67108864 "${2:-9}" >>"$OUT"
uptime >>"$OUT"
cat "$OUT"
