#!/bin/sh
# 2 ranks x 1 thread against 1 process x 2 threads, data-parallel train of a
# ResNet-18 on CIFAR-10-shaped synthetic data (3x32x32, 10 classes), batch
# 128, WIDTH (0.25 and 1), STEPS steps, evaluation only at the end (its time
# is outside train_seconds).  Run from the repository root:
#     sh results/mpi/run.sh [WIDTH STEPS]
# Writes results/mpi/raw/w$WIDTH-{1x2,2x1}/ and prints the table of
# results/mpi/summarise.py.
set -eu
W=${1:-0.25}
STEPS=${2:-30}
B=./build/harness/amo-bench
OUT=results/mpi/raw
ARGS="--dataset synthetic --syn-n 4096 --in-ch 3 --hw 32 --classes 10 --val 128 --batch 128
      --width $W --steps $STEPS --eval-every $STEPS --quiet"
uptime >"$OUT/load-w$W.txt" 2>&1 || { mkdir -p "$OUT"; uptime >"$OUT/load-w$W.txt"; }
rm -rf "$OUT/w$W-1x2" "$OUT/w$W-2x1"
$B train $ARGS --threads 2 --out "$OUT/w$W-1x2"
uptime >>"$OUT/load-w$W.txt"
mpirun --allow-run-as-root -np 2 $B train $ARGS --threads 1 --out "$OUT/w$W-2x1"
uptime >>"$OUT/load-w$W.txt"
python3 results/mpi/summarise.py "$OUT/w$W-1x2" "$OUT/w$W-2x1"
