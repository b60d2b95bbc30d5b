#!/bin/sh
# Where a bf16 ResNet-18 and ResNet-50 step spend their oneDNN time: ours with
# the weight gradients by im2col + matmul where it pays (--conv-gemm auto),
# nowhere (off) and everywhere (all), and for ResNet-18 PyTorch's channels-last
# autocast, back to back, each summarised by verbose_summary.py (ms per step
# per primitive, ms per call per shape).
#     results/nn/profile.sh [OUT]     (repository root, release build in build/)
# The raw logs (OUT/*.log, ~1000 lines each) are not kept in git.
set -eu
OUT=${1:-results/nn/profile}
B=${AMO_BENCH:-./build/harness/amo-bench}
PY=${PYTHON:-/usr/bin/python3}
A=${ANCHORS:-../shared/anchors}
STEPS=3 # timed; the log also holds the 2 warm-up steps
mkdir -p "$OUT"
one() {
    name=$1
    shift
    {
        echo "# DNNL_VERBOSE=1 $*"
        echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    } >"$OUT/$name.txt"
    DNNL_VERBOSE=1 "$@" >"$OUT/$name.log" 2>&1
    grep -E '^images/s|img/s' "$OUT/$name.log" >>"$OUT/$name.txt" || true
    "$PY" results/nn/verbose_summary.py "$OUT/$name.log" $((STEPS + 2)) >>"$OUT/$name.txt"
    echo "$name: $(sed -n 3p "$OUT/$name.txt")"
}
one bf16_ours_gemm_auto "$B" throughput --bf16 --threads 2 --steps $STEPS
one bf16_ours_gemm_off "$B" throughput --bf16 --conv-gemm off --threads 2 --steps $STEPS
one bf16_ours_gemm_all "$B" throughput --bf16 --conv-gemm all --threads 2 --steps $STEPS
one bf16_torch_cl "$PY" "$A/torch_resnet18.py" --bf16 --channels-last --threads 2 --steps $STEPS
# ImageNet ResNet-50, batch 32, 224x224x3: the wider range of shapes
R50="--model resnet50 --stem imagenet --hw 224 --batch 32 --classes 1000"
for m in auto off all; do
    # shellcheck disable=SC2086
    one r50_bf16_ours_gemm_$m "$B" throughput $R50 --bf16 --conv-gemm $m --threads 2 --steps $STEPS
done
