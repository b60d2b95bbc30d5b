#!/bin/sh
# One sitting of `amo-bench throughput` beside PyTorch's anchors, each pair run
# back to back (the machine is shared: quote ratios from the same sitting).
#     results/nn/run.sh [OUT]          (repository root, release build in build/)
# Environment: AMO_BENCH (./build/harness/amo-bench), PYTHON (/usr/bin/python3,
# with python3-torch and python3-torchvision), ANCHORS (../shared/anchors),
# REPS (2: the whole list twice, so each figure has a second sample).
# Each command's output goes to OUT/NAME_REP.txt, headed by the command line,
# the UTC time and the load average; results/nn/README.md quotes them.
set -eu
OUT=${1:-results/nn/sitting}
B=${AMO_BENCH:-./build/harness/amo-bench}
PY=${PYTHON:-/usr/bin/python3}
A=${ANCHORS:-../shared/anchors}
REPS=${REPS:-2}
mkdir -p "$OUT"

run() {
    name=$1
    shift
    f="$OUT/${name}_$rep.txt"
    {
        echo "# $*"
        echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
        "$@"
    } >"$f" 2>&1 || { echo "run.sh: $name failed, see $f" >&2; exit 1; }
    printf '%-22s %s\n' "$name" "$(grep -E '^images/s|img/s' "$f" | head -n 1)"
}

rep=1
while [ "$rep" -le "$REPS" ]; do
    # CIFAR ResNet-18, batch 128, 32x32x3, 2 threads
    run r18_fp32_ours "$B" throughput --threads 2 --steps 10
    run r18_fp32_torch_nchw "$PY" "$A/torch_resnet18.py" --threads 2 --steps 10
    run r18_fp32_torch_cl "$PY" "$A/torch_resnet18.py" --threads 2 --steps 10 --channels-last
    run r18_bf16_ours "$B" throughput --bf16 --threads 2 --steps 10
    run r18_bf16_ours_gemm_off "$B" throughput --bf16 --conv-gemm off --threads 2 --steps 10
    run r18_bf16_torch_nchw "$PY" "$A/torch_resnet18.py" --bf16 --threads 2 --steps 10
    run r18_bf16_torch_cl "$PY" "$A/torch_resnet18.py" --bf16 --threads 2 --steps 10 \
        --channels-last
    # ImageNet ResNet-50, batch 32, 224x224x3, 2 threads
    run r50_fp32_ours "$B" throughput --model resnet50 --stem imagenet --hw 224 --batch 32 \
        --classes 1000 --threads 2 --steps 5
    run r50_fp32_torch_cl "$PY" "$A/torch_resnet50.py" --batch 32 --threads 2 --steps 5 \
        --channels-last
    run r50_bf16_ours "$B" throughput --model resnet50 --stem imagenet --hw 224 --batch 32 \
        --classes 1000 --bf16 --threads 2 --steps 5
    run r50_bf16_torch_cl "$PY" "$A/torch_resnet50.py" --batch 32 --threads 2 --steps 5 \
        --bf16 --channels-last
    rep=$((rep + 1))
done
