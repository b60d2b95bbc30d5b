#!/bin/sh
# Where a bf16 ResNet-18 and ResNet-50 step spend their oneDNN time: ours with
# the weight gradients by im2col + matmul where it pays (--conv-gemm auto),
# nowhere (off) and everywhere (all), and for ResNet-18 PyTorch's channels-last
# autocast; then fp32 with Winograd where it pays (--conv-algo auto), nowhere
# (direct) and everywhere (winograd) for ResNet-18 and the Fashion-MNIST
# geometry (width 1/4, 28x28x1), auto and direct for ResNet-50, and PyTorch's
# channels-last fp32 ResNet-18.  Back to back, each summarised
# by verbose_summary.py (ms per step per primitive, ms per call per shape).
#     results/nn/profile.sh [OUT]     (repository root, release build in build/)
# PARTS="bf16 fp32" (the default) chooses which halves run.
# The raw logs (OUT/*.log, ~1000 lines each) are not kept in git.
set -eu
OUT=${1:-results/nn/profile}
B=${AMO_BENCH:-./build/harness/amo-bench}
PY=${PYTHON:-/usr/bin/python3}
A=${ANCHORS:-../shared/anchors}
STEPS=3 # timed; the log also holds the 2 warm-up steps
PARTS=${PARTS:-bf16 fp32}
R50="--model resnet50 --stem imagenet --hw 224 --batch 32 --classes 1000"
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
case " $PARTS " in *" bf16 "*)
one bf16_ours_gemm_auto "$B" throughput --bf16 --threads 2 --steps $STEPS
one bf16_ours_gemm_off "$B" throughput --bf16 --conv-gemm off --threads 2 --steps $STEPS
one bf16_ours_gemm_all "$B" throughput --bf16 --conv-gemm all --threads 2 --steps $STEPS
one bf16_torch_cl "$PY" "$A/torch_resnet18.py" --bf16 --channels-last --threads 2 --steps $STEPS
# ImageNet ResNet-50, batch 32, 224x224x3: the wider range of shapes
for m in auto off all; do
    # shellcheck disable=SC2086
    one r50_bf16_ours_gemm_$m "$B" throughput $R50 --bf16 --conv-gemm $m --threads 2 --steps $STEPS
done
esac
# fp32: Winograd for 3x3/1 convolutions (--conv-algo)
case " $PARTS " in *" fp32 "*)
FM="--width 0.25 --in-ch 1 --hw 28"
for m in auto direct winograd; do
    one f32_ours_algo_$m "$B" throughput --conv-algo $m --threads 2 --steps $STEPS
    # shellcheck disable=SC2086
    one fm_f32_ours_algo_$m "$B" throughput $FM --conv-algo $m --threads 2 --steps $STEPS
done
one f32_torch_cl "$PY" "$A/torch_resnet18.py" --channels-last --threads 2 --steps $STEPS
for m in auto direct; do
    # shellcheck disable=SC2086
    one r50_f32_ours_algo_$m "$B" throughput $R50 --conv-algo $m --threads 2 --steps $STEPS
done
esac
