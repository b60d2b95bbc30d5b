#!/bin/sh
# 2 ranks x 1 thread against 1 process x 2 threads, data-parallel train of a
# ResNet-18 on CIFAR-10-shaped synthetic data (3x32x32, 10 classes), batch
# 128, WIDTH (0.25 and 1), STEPS steps, evaluation only at the end (its time
# is outside train_seconds).  ROUNDS rounds, the variants taking turns within
# each (the host's load hits them alike); with MPI_ALT set (e.g.
# "--mca btl_vader_single_copy_mechanism none") a third variant runs the 2
# ranks with those Open MPI options.  Run from the repository root:
#     [OUT=DIR] [ROUNDS=3] [MPI_ALT=...] sh results/mpi/run.sh [WIDTH STEPS]
# Writes $OUT/w$WIDTH-r$K-{1x2,2x1,2x1alt}/ and $OUT/load-w$WIDTH.txt and
# prints the table of results/mpi/summarise.py.
set -eu
W=${1:-0.25}
STEPS=${2:-30}
B=./build/harness/amo-bench
OUT=${OUT:-results/mpi/raw}
ROUNDS=${ROUNDS:-1}
ARGS="--dataset synthetic --syn-n 4096 --in-ch 3 --hw 32 --classes 10 --val 128 --batch 128
      --width $W --steps $STEPS --eval-every $STEPS --quiet"
mkdir -p "$OUT"
uptime >"$OUT/load-w$W.txt"
dirs=
for k in $(seq 1 "$ROUNDS"); do
    d=$OUT/w$W-r$k
    rm -rf "$d-1x2" "$d-2x1" "$d-2x1alt"
    $B train $ARGS --threads 2 --out "$d-1x2"
    mpirun --allow-run-as-root -np 2 $B train $ARGS --threads 1 --out "$d-2x1"
    dirs="$dirs $d-1x2 $d-2x1"
    if [ -n "${MPI_ALT:-}" ]; then
        # (word splitting of MPI_ALT is intended)
        mpirun --allow-run-as-root $MPI_ALT -np 2 $B train $ARGS --threads 1 --out "$d-2x1alt"
        dirs="$dirs $d-2x1alt"
    fi
    uptime >>"$OUT/load-w$W.txt"
done
python3 results/mpi/summarise.py $dirs
