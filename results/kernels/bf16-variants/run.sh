#!/bin/sh
# Session 8's bf16-state loop variants and same-traffic limits at 64M
# parameters, one thread (variants.c says what each row is).  From the
# repository root with the release build in build/:
#     sh results/kernels/bf16-variants/run.sh OUT.txt [ROUNDS]
set -eu
OUT=${1:?usage: run.sh OUT.txt [ROUNDS]}
D=$(dirname "$0")
BIN=${TMPDIR:-/tmp}/amo-bf16-variants
cc -O3 -std=c11 -fno-math-errno -mavx2 -mfma -mavx512f -mavx512bw -mavx512dq -mavx512vl \
    -mavx512bf16 -maes -mvaes -mprfchw -I. -Ibuild "$D/variants.c" -o "$BIN" \
    -Lbuild -lamo -Wl,-rpath,"$(pwd)/build"
{
    date -u +"%Y-%m-%dT%H:%M:%SZ $(git rev-parse --short HEAD)"
    grep -m1 "model name" /proc/cpuinfo
    "$BIN" 67108864 "${2:-9}"
    uptime
} | tee "$OUT"
