#!/usr/bin/env bash
# The whole study of results/README.md, re-run from nothing:
#
#   results/study/run.sh            # sweep -> paired seeds -> ablation -> cosine -> plots
#   results/study/run.sh sweep|main|ablation|cosine|throughput|plots   # one phase
#
# Every run is one `amo-bench train`; JOBS of them run side by side with
# THREADS threads each (default 2 x 1 thread on a 2-core machine: the same
# images/s as 1 x 2 threads for this small network, and a crashed or diverged
# run does not stop the others).  Runs already finished are skipped, an
# interrupted one is continued from its last checkpoint (--resume), so the
# script can be stopped and started again.  Environment: AMO_BENCH (the
# binary), OUT (default results/study), JOBS, THREADS, EPOCHS, SWEEP_EPOCHS,
# SEEDS (paired seeds, default 1,2,3), PYTHON (for the plots: Debian's
# /usr/bin/python3 with python3-matplotlib), DATASET and DATA (CIFAR-10:
# DATASET=cifar10 DATA=dir-with-data_batch_1.bin, and a different OUT).
set -euo pipefail
cd "$(dirname "$0")/../.."

BENCH=${AMO_BENCH:-build/harness/amo-bench}
OUT=${OUT:-results/study}
JOBS=${JOBS:-2}
THREADS=${THREADS:-1}
EPOCHS=${EPOCHS:-5}            # paired seeds and ablation: 2150 steps of batch 128
SWEEP_EPOCHS=${SWEEP_EPOCHS:-2}
SWEEP_SEED=100                 # the sweep's seed is none of the paired seeds 1, 2, 3
SEEDS=${SEEDS:-1,2,3}
PYTHON=${PYTHON:-/usr/bin/python3}

# The protocol shared by every run (see results/README.md, "Protocol").
DATASET=${DATASET:-fashion}
COMMON=(--dataset "$DATASET" ${DATA:+--data "$DATA"} --model resnet18 --width 0.125 --batch 128 --label-smoothing 0.1
        --schedule constant --eval-every 100 --targets 0.85,0.88,0.90,0.91
        --threads "$THREADS" --checkpoint-every 500 --quiet)

# The five variants, each isolating one mechanism.  AMO's bounds: the paper
# clips parameters to bounds without giving them; +-3 is 6x the largest He
# initialisation scale here, and steps.csv counts the parameters on a bound.
variant_flags() {
    case $1 in
        adam)       echo "--optimizer adam" ;;
        amo-noclip) echo "--optimizer amo --clip off" ;;
        amo)        echo "--optimizer amo --clip on --tau 1 --bounds -3,3" ;;
        sgd)        echo "--optimizer sgd --momentum 0.9" ;;
        rmsprop)    echo "--optimizer rmsprop --alpha 0.99" ;;
    esac
}
default_lr() {
    case $1 in adam|amo-noclip|amo) echo 1e-3 ;; sgd) echo 0.1 ;; rmsprop) echo 1e-2 ;; esac
}
sweep_lrs() {
    case $1 in
        adam|amo-noclip|amo) echo "3e-4 1e-3 3e-3 1e-2" ;;
        sgd)                 echo "0.01 0.03 0.1 0.3" ;;
        rmsprop)             echo "1e-4 3e-4 1e-3 3e-3 1e-2" ;;
    esac
}
VARIANTS="adam amo-noclip amo sgd rmsprop"

# One job per line: the out directory then the train options.
# job PHASE VARIANT LR EPOCHS SEED [more train options]
job() {
    local dir=$OUT/$1 v=$2 lr=$3 epochs=$4 seed=$5
    shift 5
    # (no trailing blank: xargs -L would join the next line to this one)
    printf '%s\n' "$dir ${COMMON[*]} $(variant_flags "$v") --lr $lr --epochs $epochs --seed $seed${*:+ $*}"
}

run_jobs() {  # stdin: job lines
    local list; list=$(mktemp)
    cat >"$list"
    echo "$(date -u +%FT%TZ) $(wc -l <"$list") runs, $JOBS at a time" >&2
    # Each run is claimed with an atomic mkdir, so a second invocation of the
    # same phase (started while the first still runs, to use a free core)
    # takes only the runs nobody has; a claim whose process is gone is taken
    # over.  A diverged run exits 1: recorded in its CSVs, not a reason to stop.
    xargs -P "$JOBS" -L 1 sh -c '
        out=$1; shift
        mkdir -p "$out/.claims"
        claim=$out/.claims/$(printf "%s" "$*" | cksum | cut -d" " -f1)
        if ! mkdir "$claim" 2>/dev/null; then
            pid=$(cat "$claim/pid" 2>/dev/null)
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && exit 0
        fi
        echo $$ >"$claim/pid"
        "$0" train "$@" --out "$out" --resume 2>>"$out/errors.log" \
            && echo "  done: $*" >&2 \
            || echo "  exit $?: $* (see $out/errors.log)" >&2
        rm -rf "$claim"' "$BENCH" <"$list" || true
    rm -f "$list"
    find "$OUT" -maxdepth 2 -name errors.log -empty -delete  # keep only real errors
}

sweep() {
    mkdir -p "$OUT/sweep"
    for v in $VARIANTS; do
        for lr in $(sweep_lrs "$v"); do
            job sweep "$v" "$lr" "$SWEEP_EPOCHS" "$SWEEP_SEED"
        done
    done | run_jobs
    # A best value on an end of the grid gets the next value beyond it (at
    # most two more per side), so no variant is judged at an edge.
    for _ in 1 2; do
        "$BENCH" combine --out "$OUT/sweep"
        local grid="" extra
        for v in $VARIANTS; do grid="$grid${grid:+;}$v $(sweep_lrs "$v")"; done
        extra=$("$PYTHON" results/study/analyze.py sweep-extend "$OUT" "$grid")
        [ -n "$extra" ] || break
        echo "$extra" | while IFS=, read -r v lr; do
            job sweep "$v" "$lr" "$SWEEP_EPOCHS" "$SWEEP_SEED"
        done | run_jobs
    done
    "$BENCH" combine --out "$OUT/sweep"
    "$PYTHON" results/study/analyze.py best-lr "$OUT" >"$OUT/sweep/best_lr.csv"
    cat "$OUT/sweep/best_lr.csv" >&2
}

best_lr() {
    awk -F, -v v="$1" '$1 == v { print $2 }' "$OUT/sweep/best_lr.csv"
}

main() {
    mkdir -p "$OUT/main"
    for seed in ${SEEDS//,/ }; do
        for v in $VARIANTS; do
            for lr in $(printf '%s\n' "$(default_lr "$v")" "$(best_lr "$v")" | sort -gu); do
                job main "$v" "$lr" "$EPOCHS" "$seed"
            done
        done
    done | run_jobs
    "$BENCH" combine --out "$OUT/main"
}

# beta x gamma for AMO (the paper's variant) at its default learning rate,
# seeds 1 and 2; the centre cell (0.9, 0.999) is the main phase's AMO run.
ablation() {
    mkdir -p "$OUT/ablation"
    for seed in 1 2; do
        for b in 0.8 0.9 0.95; do
            for g in 0.99 0.999 0.9999; do
                [ "$b,$g" = 0.9,0.999 ] && continue
                job ablation amo 1e-3 "$EPOCHS" "$seed" --beta "$b" --gamma "$g"
            done
        done
    done | run_jobs
    "$BENCH" combine --out "$OUT/ablation"
}

# One cosine-schedule run (seed 1, to zero) of the two variants with the best
# mean validation accuracy in the paired runs, each at its best learning rate.
cosine() {
    mkdir -p "$OUT/main"
    "$PYTHON" results/study/analyze.py best-two "$OUT" | while IFS=, read -r v lr; do
        job main "$v" "$lr" "$EPOCHS" 1 --schedule cosine
    done | run_jobs
    "$BENCH" combine --out "$OUT/main"
}

# The cost figures of the report: training steps at the CIFAR-10 geometry
# (the study's width and the paper's full width) and ResNet-50 at ImageNet's.
throughput() {
    local t=(--steps 20 --threads 2)
    "$BENCH" throughput --width 0.125 --hw 32 --in-ch 3 "${t[@]}" >"$OUT/throughput-cifar-w0.125.txt"
    "$BENCH" throughput --width 1 --hw 32 --in-ch 3 "${t[@]}" >"$OUT/throughput-cifar-w1.txt"
    "$BENCH" throughput --model resnet50 --stem imagenet --hw 224 --in-ch 3 --classes 1000 \
        --batch 32 --steps 5 --threads 2 >"$OUT/throughput-imagenet-r50.txt"
}

plots() {
    "$PYTHON" results/study/analyze.py report "$OUT"
}

[ -x "$BENCH" ] || { echo "run.sh: $BENCH not found: build first (meson setup build && ninja -C build)" >&2; exit 2; }
case ${1:-all} in
    sweep) sweep ;;
    main) main ;;
    ablation) ablation ;;
    cosine) cosine ;;
    throughput) throughput ;;
    plots) plots ;;
    all) sweep; main; ablation; cosine; throughput; plots ;;
    *) echo "usage: $0 [sweep|main|ablation|cosine|throughput|plots|all]" >&2; exit 2 ;;
esac
