#!/bin/sh
# A sitting of `amo-bench throughput` beside PyTorch's anchors.
#     results/nn/run.sh [OUT]            run the sitting, then print the summary
#     results/nn/run.sh summary [OUT]    only the summary (markdown, from OUT)
# (repository root, release build in build/).  OUT defaults to results/nn/sitting.
#
# The host is shared and its contention moves by 2x within minutes, so one
# run of each is no comparison: each ours/PyTorch group runs back to back,
# REPS times over, and the summary gives the ratio of each group (ours over
# PyTorch's best layout in that group) and the median of those ratios.
# Environment: AMO_BENCH (./build/harness/amo-bench), PYTHON (/usr/bin/python3,
# with python3-torch and python3-torchvision), ANCHORS (../shared/anchors),
# REPS (5: CIFAR ResNet-18 groups), REPS50 (2: ImageNet ResNet-50 groups).
# Each command's output goes to OUT/NAME_REP.txt, headed by the command line,
# the UTC time and the load average.
set -eu
if [ "${1:-}" = summary ]; then
    mode=summary
    shift
else
    mode=run
fi
OUT=${1:-results/nn/sitting}
B=${AMO_BENCH:-./build/harness/amo-bench}
PY=${PYTHON:-/usr/bin/python3}
A=${ANCHORS:-../shared/anchors}
REPS=${REPS:-5}
REPS50=${REPS50:-2}

run() {
    name=$1
    shift
    f="$OUT/${name}_$rep.txt"
    {
        echo "# $*"
        echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
        "$@"
    } >"$f" 2>&1 || { echo "run.sh: $name failed, see $f" >&2; exit 1; }
    echo "$name $rep: $(ips "$f") img/s"
}

# images/s of one output file: ours prints "images/s  X", the anchors "X img/s"
ips() {
    sed -n -e 's/^images\/s *\([0-9.]*\).*/\1/p' -e 's/.* \([0-9.]*\) img\/s.*/\1/p' "$1" | head -n 1
}

# One summary row: label, our run name, then PyTorch's run names; per rep the
# ratio ours / max(PyTorch), then the median over the reps present.
row() {
    label=$1
    ours=$2
    shift 2
    line="| $label |"
    ratios=""
    r=1
    while [ -f "$OUT/${ours}_$r.txt" ]; do
        o=$(ips "$OUT/${ours}_$r.txt")
        best=0
        for t in "$@"; do
            v=$(ips "$OUT/${t}_$r.txt")
            best=$(echo "$v $best" | awk '{ print ($1 > $2) ? $1 : $2 }')
        done
        q=$(echo "$o $best" | awk '{ printf "%.2f", $1 / $2 }')
        line="$line $o / $best = $q;"
        ratios="$ratios $q"
        r=$((r + 1))
    done
    med=$(echo "$ratios" | tr ' ' '\n' | grep . | sort -n |
          awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "$line | $med |"
}

summary() {
    echo "| comparison | per group: ours / PyTorch's best = ratio | median |"
    echo "|---|---|---|"
    row "ResNet-18 CIFAR fp32 (PyTorch NCHW, channels-last)" r18_fp32_ours \
        r18_fp32_torch_nchw r18_fp32_torch_cl
    row "ResNet-18 CIFAR fp32, --conv-algo direct" r18_fp32_ours_direct \
        r18_fp32_torch_nchw r18_fp32_torch_cl
    row "ResNet-18 CIFAR bf16 (autocast NCHW, channels-last)" r18_bf16_ours \
        r18_bf16_torch_nchw r18_bf16_torch_cl
    row "ResNet-18 CIFAR bf16, --conv-gemm off" r18_bf16_ours_gemm_off \
        r18_bf16_torch_nchw r18_bf16_torch_cl
    row "ResNet-50 ImageNet fp32 (channels-last)" r50_fp32_ours r50_fp32_torch_cl
    row "ResNet-50 ImageNet fp32, --conv-algo direct" r50_fp32_ours_direct r50_fp32_torch_cl
    row "ResNet-50 ImageNet bf16 (autocast channels-last)" r50_bf16_ours r50_bf16_torch_cl
    echo
    echo "fp32 direct convolutions' share of the FMA peak measured in the same run:"
    for f in "$OUT"/r18_fp32_ours_direct_*.txt "$OUT"/r50_fp32_ours_direct_*.txt; do
        [ -f "$f" ] || continue
        echo "$(basename "$f" .txt): $(sed -n 's/.* = \([0-9]*%\) of the FMA peak \([0-9.]*\).*/\1 of \2 GFLOP\/s/p' "$f")"
    done
}

if [ "$mode" = summary ]; then
    summary
    exit 0
fi
mkdir -p "$OUT"
rep=1
while [ "$rep" -le "$REPS" ]; do
    # CIFAR ResNet-18, batch 128, 32x32x3, 2 threads
    run r18_fp32_ours "$B" throughput --threads 2 --steps 10
    run r18_fp32_ours_direct "$B" throughput --conv-algo direct --threads 2 --steps 10
    run r18_fp32_torch_nchw "$PY" "$A/torch_resnet18.py" --threads 2 --steps 10
    run r18_fp32_torch_cl "$PY" "$A/torch_resnet18.py" --threads 2 --steps 10 --channels-last
    run r18_bf16_ours "$B" throughput --bf16 --threads 2 --steps 10
    run r18_bf16_ours_gemm_off "$B" throughput --bf16 --conv-gemm off --threads 2 --steps 10
    run r18_bf16_torch_nchw "$PY" "$A/torch_resnet18.py" --bf16 --threads 2 --steps 10
    run r18_bf16_torch_cl "$PY" "$A/torch_resnet18.py" --bf16 --threads 2 --steps 10 \
        --channels-last
    rep=$((rep + 1))
done
rep=1
while [ "$rep" -le "$REPS50" ]; do
    # ImageNet ResNet-50, batch 32, 224x224x3, 2 threads
    run r50_fp32_ours "$B" throughput --model resnet50 --stem imagenet --hw 224 --batch 32 \
        --classes 1000 --threads 2 --steps 5
    run r50_fp32_ours_direct "$B" throughput --model resnet50 --stem imagenet --hw 224 \
        --batch 32 --classes 1000 --conv-algo direct --threads 2 --steps 5
    run r50_fp32_torch_cl "$PY" "$A/torch_resnet50.py" --batch 32 --threads 2 --steps 5 \
        --channels-last
    run r50_bf16_ours "$B" throughput --model resnet50 --stem imagenet --hw 224 --batch 32 \
        --classes 1000 --bf16 --threads 2 --steps 5
    run r50_bf16_torch_cl "$PY" "$A/torch_resnet50.py" --batch 32 --threads 2 --steps 5 \
        --bf16 --channels-last
    rep=$((rep + 1))
done
summary
