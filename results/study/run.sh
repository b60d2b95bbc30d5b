#!/usr/bin/env bash
# The whole study of results/README.md, re-run from nothing:
#
#   results/study/run.sh            # sweep -> paired seeds -> ablation -> cosine -> plots
#   results/study/run.sh sweep|main|ablation|cosine|throughput|plots   # one phase
#
# and the second study, fixed in results/study/PROTOCOL.md before its runs:
#
#   results/study/run.sh study2     # confirm -> ablation2 -> explore -> plots
#   results/study/run.sh confirm|ablation2|explore                     # one phase
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
    # Each run is claimed by a symlink whose target is "host pid", made in
    # one atomic step, so that a second invocation of the same phase (started
    # while the first still runs, to use a free core, or as another task of a
    # job array on a shared OUT) takes only the runs nobody has.  A claim
    # whose process is gone from this host is taken over by renaming it to a
    # name of the taker's own (one taker wins) and checking that what it
    # moved is the stale claim it read; a claim from another host is left
    # alone (its process cannot be seen from here: remove
    # OUT/PHASE/.claims/N by hand after a task died there).  A diverged run
    # exits 1: recorded in its CSVs, not a reason to stop.
    xargs -P "$JOBS" -L 1 sh -c '
        out=$1; shift
        mkdir -p "$out/.claims"
        claim=$out/.claims/$(printf "%s" "$*" | cksum | cut -d" " -f1)
        host=$(hostname)
        if ! ln -sT "$host $$" "$claim" 2>/dev/null; then
            if [ -d "$claim" ] && [ ! -L "$claim" ]; then # a claim of the older script
                owner="$host $(cat "$claim/pid" 2>/dev/null)"
            else
                owner=$(readlink "$claim") || exit 0
            fi
            { [ "${owner% *}" != "$host" ] || kill -0 "${owner##* }" 2>/dev/null; } && exit 0
            stale=$claim.stale.$host.$$
            mv -T "$claim" "$stale" 2>/dev/null || exit 0
            if [ -L "$stale" ] && [ "$(readlink "$stale")" != "$owner" ]; then
                mv -Tn "$stale" "$claim" 2>/dev/null # a fresh claim, not the stale one: back
                exit 0
            fi
            rm -rf "$stale"
            ln -sT "$host $$" "$claim" 2>/dev/null || exit 0
        fi
        "$0" train "$@" --out "$out" --resume 2>>"$out/errors.log" \
            && echo "  done: $*" >&2 \
            || echo "  exit $?: $* (see $out/errors.log)" >&2
        rm -f "$claim"' "$BENCH" <"$list" || true
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

# ---- the second study (PROTOCOL.md) -----------------------------------------
# Every run convolves direct, as the first study's runs did (they predate
# --conv-algo): phase B pools its seeds 3, 4 with the first study's 1, 2, and
# phase A's AMO/he runs must reproduce the first study's at seeds 1-3.
STUDY2=(--conv-algo direct)
SEEDS2=${SEEDS2:-1,2,3,4,5,6,7,8}
EXPLORE_SEEDS=${EXPLORE_SEEDS:-1,2,3,4}
ABLATION2_SEEDS=${ABLATION2_SEEDS:-3,4}

# Phase A: the paper's defaults at both initialisations, constant rate,
# seeds interleaved so that a stopped session leaves whole seeds.
confirm() {
    mkdir -p "$OUT/confirm"
    for seed in ${SEEDS2//,/ }; do
        for init in he torch; do
            for v in amo adam; do
                job confirm "$v" 1e-3 "$EPOCHS" "$seed" "${STUDY2[@]}" --init "$init" --test-at-best
            done
        done
    done | run_jobs
    "$BENCH" combine --out "$OUT/confirm"
}

# Phase B: the ablation's seeds 3 and 4 (seeds 1, 2 are in $OUT/ablation;
# the centre cell is the first study's main AMO run and phase A's).
ablation2() {
    mkdir -p "$OUT/ablation2"
    for seed in ${ABLATION2_SEEDS//,/ }; do
        for b in 0.8 0.9 0.95; do
            for g in 0.99 0.999 0.9999; do
                [ "$b,$g" = 0.9,0.999 ] && continue
                job ablation2 amo 1e-3 "$EPOCHS" "$seed" "${STUDY2[@]}" --beta "$b" --gamma "$g"
            done
        done
    done | run_jobs
    "$BENCH" combine --out "$OUT/ablation2"
}

# Phase C (exploratory): a cosine schedule (to 0) for every variant, the
# paper's pair first.  Warm-up: 215 steps, 10% of the budget.
explore() {
    mkdir -p "$OUT/explore"
    local cos=(--schedule cosine "${STUDY2[@]}" --test-at-best)
    {
        for seed in ${EXPLORE_SEEDS//,/ }; do
            job explore amo 1e-3 "$EPOCHS" "$seed" "${cos[@]}"
            job explore adam 1e-3 "$EPOCHS" "$seed" "${cos[@]}"
        done
        for seed in ${EXPLORE_SEEDS//,/ }; do
            job explore amo 3e-3 "$EPOCHS" "$seed" "${cos[@]}"
            for lr in 3e-3 1e-2; do job explore adam "$lr" "$EPOCHS" "$seed" "${cos[@]}"; done
            job explore adam 1e-3 "$EPOCHS" "$seed" "${cos[@]}" --warmup 215
            job explore adam 1e-3 "$EPOCHS" "$seed" "${cos[@]}" --clip on --tau 1
        done
    } | run_jobs
    "$BENCH" combine --out "$OUT/explore"
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
    [ ! -s "$OUT/confirm/summary.csv" ] || "$PYTHON" results/study/analyze.py report2 "$OUT"
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
    confirm) confirm ;;
    ablation2) ablation2 ;;
    explore) explore ;;
    study2) confirm; ablation2; explore; plots ;;
    *) echo "usage: $0 [sweep|main|ablation|cosine|throughput|plots|all|confirm|ablation2|explore|study2]" >&2
       exit 2 ;;
esac
