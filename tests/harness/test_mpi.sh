#!/bin/sh
# Data-parallel amo-bench train under mpirun on 2 ranks, and 4 for one
# comparison (harness/dist.h),
# against one process as the oracle:
#   - --sync-bn on 2 ranks = 1 process with the same global batch: per-step
#     loss and gradient norm within 1e-4 relative, final parameters within
#     1e-5 absolute, for 32 steps; local batch norm (no --sync-bn) must miss
#     those bounds, or the comparison proves nothing;
#   - the same on 4 ranks, twice bitwise;
#   - 2 ranks twice: bitwise the same untimed columns (the ranks' parameters
#     are compared at every evaluation by the run itself: a mismatch fails it);
#   - ranks whose updates differ (one at the scalar level, one at avx2): the
#     run's replica check ends it at the first evaluation;
#   - kill -9 of one rank after a checkpoint ends the job with an error within
#     seconds, and --resume equals the uninterrupted run;
#   - --help and --version printed once, exit 0; the one-process commands
#     (kernels, throughput, loader, convex, combine) refuse, said once;
#   - bad input printed once: a batch the rank count does not divide, a
#     checkpoint of another rank count (both ways);
#   - ablation on 2 ranks (each rank its share of the grid, rank 0 combines)
#     = the same grid in one process, every untimed column.
#     sh tests/harness/test_mpi.sh path/to/amo-bench path/to/mpirun
# (Without MPI meson runs a stub that skips, saying why.)  The bounds: at
# this size (8x8 images, 4 channels) one process's own rounding grows to
# 1% within 15 steps with augmentation or AMO's normalised step (1 against
# 2 threads show it), so the oracle comparison uses SGD without
# augmentation, where one process stays within 1e-5 of itself.
set -u
BENCH=${1:?usage: test_mpi.sh AMO_BENCH MPIRUN}
MPIRUN=${2:?usage: test_mpi.sh AMO_BENCH MPIRUN}
case $BENCH in /*) ;; */*) BENCH=$(pwd)/$BENCH ;; esac
. "$(dirname "$0")/harness_lib.sh"
unset OMP_NUM_THREADS
export OMP_WAIT_POLICY=passive
cd "$TMP" || exit 1
# CI runs as root; 2 ranks on whatever cores there are.  Shared memory
# without its single-copy mechanism (CMA needs ptrace rights that containers
# often withhold: "Read -1, ... errno = 1"); the tests time nothing.
MPIR="$MPIRUN --allow-run-as-root --oversubscribe"
MPI="$MPIR -np 2"
export OMPI_MCA_btl_vader_single_copy_mechanism=none

TINY="--dataset synthetic --syn-n 256 --hw 8 --in-ch 1 --classes 4 --batch 16 --val 32
      --width 0.0625 --threads 1 --quiet"
ORACLE="$TINY --steps 32 --eval-every 16 --optimizer sgd --lr 0.01 --no-augment --val 41"

# mpi2 ARGS...: amo-bench on 2 ranks, output in $TMP/out.
mpi2() { $MPI "$BENCH" "$@" >"$TMP/out" 2>&1; }

# ---- --sync-bn on 2 ranks against one process ------------------------------------
"$BENCH" train $ORACLE --out one --save-params one.f32 >"$TMP/out" 2>&1 \
    || { bad 'one process'; show "$TMP/out"; }
mpi2 train $ORACLE --sync-bn --out sync --save-params sync.f32 \
    || { bad '2 ranks --sync-bn'; show "$TMP/out" 20; }
mpi2 train $ORACLE --out local --save-params local.f32 \
    || { bad '2 ranks, local batch norm'; show "$TMP/out" 20; }
# within A B: exit 0 if every step's loss and gradient norm (steps.csv) and
# every parameter of A.f32 and B.f32 are within the bounds; prints the largest
# differences.
within() {
    python3 - "$1" "$2" <<'EOF'
import csv, sys
from array import array
def rows(d):
    with open(d + "/steps.csv") as f:
        return list(csv.DictReader(f))
def params(p):
    a = array("f")
    with open(p, "rb") as f:
        a.frombytes(f.read())
    return a
a, b = rows(sys.argv[1]), rows(sys.argv[2])
pa, pb = params(sys.argv[1] + ".f32"), params(sys.argv[2] + ".f32")
assert len(a) == len(b) == 32 and len(pa) == len(pb) > 0
rel = lambda k: max(abs(float(x[k]) - float(y[k])) / abs(float(x[k])) for x, y in zip(a, b))
dl, dg = rel("loss"), rel("grad_norm")
dp = max(abs(x - y) for x, y in zip(pa, pb))
# the evaluations (running statistics, the split of 41 validation images)
def conv(d):
    with open(d + "/convergence.csv") as f:
        return list(csv.DictReader(f))
ca, cb = conv(sys.argv[1]), conv(sys.argv[2])
assert len(ca) == len(cb) == 2
dv = max(abs(float(x["val_loss"]) - float(y["val_loss"])) / float(x["val_loss"])
         for x, y in zip(ca, cb))
da = max(abs(float(x["val_acc"]) - float(y["val_acc"])) for x, y in zip(ca, cb))
print("    loss %.2e, grad_norm %.2e, val_loss %.2e (relative), parameters %.2e, val_acc %.3f "
      "(absolute)" % (dl, dg, dv, dp, da))
sys.exit(0 if dl <= 1e-4 and dg <= 1e-4 and dv <= 1e-4 and dp <= 1e-5 and da <= 0.025 else 1)
EOF
}
if within one sync; then
    ok '--sync-bn on 2 ranks = 1 process (32 steps, 2 evaluations of 41 images; bounds 1e-4 relative on loss, gradient norm and validation loss, 1e-5 on parameters, one image of validation accuracy)'
else
    bad '--sync-bn on 2 ranks differs from 1 process'
fi
if within one local >/dev/null; then
    bad 'local batch norm on 2 ranks within the bounds: the comparison cannot tell'
else
    ok 'local batch norm on 2 ranks misses the bounds (the comparison tells)'
fi

# 4 ranks (4 examples each): the sums' order is no longer a single pair
$MPIR -np 4 "$BENCH" train $ORACLE --sync-bn --out sync4 \
    --save-params sync4.f32 >"$TMP/out" 2>&1 || { bad '4 ranks --sync-bn'; show "$TMP/out" 20; }
$MPIR -np 4 "$BENCH" train $ORACLE --sync-bn --out sync4b \
    --save-params sync4b.f32 >"$TMP/out" 2>&1 || { bad '4 ranks --sync-bn again'; show "$TMP/out" 20; }
within one sync4 && ok '--sync-bn on 4 ranks = 1 process (the same bounds)' \
    || bad '--sync-bn on 4 ranks differs from 1 process'
if cmp -s sync4.f32 sync4b.f32; then
    same_results sync4 sync4b '4 ranks twice: bitwise the same parameters and untimed columns'
else
    bad '4 ranks twice: the parameters differ'
fi

mpi2 train $TINY --batch 2 --steps 3 --sync-bn --out share1 \
    && ok '--sync-bn with one example per rank trains (the statistics count both ranks)' \
    || { bad '--sync-bn with one example per rank'; show "$TMP/out" 8; }

# ---- 2 ranks twice: the same untimed columns --------------------------------------
SHORT="$TINY --steps 40 --eval-every 10"
mpi2 train $SHORT --out ref || { bad '2 ranks'; show "$TMP/out" 20; }
mpi2 train $SHORT --out again || { bad '2 ranks again'; show "$TMP/out" 20; }
same_results ref again '2 ranks twice: bitwise the same untimed columns'
grep -q '"ranks": 2' ref/runs/*/metadata.json && grep -q '"mpi_library": "Open MPI' \
    ref/runs/*/metadata.json && ok 'metadata: ranks, MPI library' \
    || { bad 'metadata'; show ref/runs/*/metadata.json 60; }

# ---- kill -9 of one rank, then --resume ------------------------------------------------
# A longer run (300 steps: a second or more after its first checkpoint, at
# step 10, even on a fast idle machine), killed once that checkpoint is
# there; a run that still got to the end first is tried again (3 tries).
LONG="$TINY --steps 300 --eval-every 10 --syn-n 512"
mpi2 train $LONG --out long || { bad '2 ranks, long'; show "$TMP/out" 20; }
for try in 1 2 3; do
    rm -rf killed
    $MPI "$BENCH" train $LONG --out killed >"$TMP/killed.out" 2>&1 &
    job=$!
    while kill -0 "$job" 2>/dev/null && [ ! -f "killed/runs/$(rid killed)/checkpoint.bin" ]; do
        sleep 0.02
    done
    victim=$(pgrep -P "$job" amo-bench | tail -n 1)
    [ -n "$victim" ] && [ ! -f "killed/runs/$(rid killed)/summary.csv" ] && break
    wait "$job" || { echo "    (try $try failed before the kill:)"; show "$TMP/killed.out" 12; }
    echo "    (try $try ended before the kill)"
done
if [ -z "$victim" ] || [ -f "killed/runs/$(rid killed)/summary.csv" ]; then
    bad 'kill -9: the run finished before the kill, 3 times'
else
    kill -${KILL_SIGNAL:-KILL} "$victim" # (KILL_SIGNAL=STOP: a hang, to see this fail)
    t0=$(date +%s)
    # a job still there after 20 s hangs: end it (mpirun, then its ranks)
    while kill -0 "$job" 2>/dev/null && [ $(($(date +%s) - t0)) -le 20 ]; do
        sleep 0.1
    done
    ranks=$(pgrep -P "$job")
    kill -KILL "$job" $ranks 2>/dev/null
    wait "$job"
    code=$?
    took=$(($(date +%s) - t0))
    if [ "$code" -ne 0 ] && [ "$took" -le 10 ] && grep -q 'signal 9' "$TMP/killed.out"; then
        ok "kill -9 of one rank: the job ended with an error (exit $code) in ${took}s"
    else
        bad "kill -9 of one rank: exit $code after ${took}s"; show "$TMP/killed.out" 20
    fi
    cp -R killed killed-copy
    mpi2 train $LONG --out killed --resume || { bad 'resume'; show "$TMP/out" 20; }
    same_results long killed 'killed and resumed on 2 ranks = uninterrupted'
fi

# ---- ranks that drift apart: the run's own replica check must catch it -----------------
# One rank's update at the scalar level and the other's at avx2 differ in the
# last bits (estimates and Newton steps against sqrt and division): the
# parameters compared at the first evaluation must differ, and the run end.
if AMO_ARCH=avx2 "$BENCH" train $TINY --steps 1 --out probe >/dev/null 2>&1; then
    $MPIR -np 1 -x AMO_ARCH=scalar "$BENCH" train $SHORT --out drift : \
        -np 1 -x AMO_ARCH=avx2 "$BENCH" train $SHORT --out drift >"$TMP/out" 2>&1
    code=$?
    if [ "$code" -eq 1 ] && [ "$(grep -c 'step 10: the parameters differ across ranks' "$TMP/out")" -eq 1 ] \
        && [ ! -f drift/summary.csv ]; then
        ok 'ranks whose updates differ: the replica check ends the run at step 10 (exit 1, said once)'
    else
        bad "ranks whose updates differ: exit $code"; show "$TMP/out" 12
    fi
else
    echo "    (skipped the replica-check test: amo-bench has no avx2 level here to set beside scalar)"
fi

# ---- --help and --version under mpirun: once, and a clean exit, not MPI's abnormal termination ----
for args in --help --version 'train --help' 'ablation --help' 'kernels --help' 'throughput --help' \
    'convex --help' 'loader --help' 'combine --help'; do
    mpi2 $args
    code=$?
    if [ "$code" -eq 0 ] && ! grep -Eq 'finalize|abnormal' "$TMP/out" \
        && [ "$(grep -Ec '^(Usage|amo-bench [0-9])' "$TMP/out")" -eq 1 ]; then
        ok "amo-bench $args on 2 ranks: exit 0, no MPI error, printed once"
    else
        bad "amo-bench $args on 2 ranks: exit $code"; show "$TMP/out" 12
    fi
done

# ---- bad input, printed once ---------------------------------------------------------
# once CODE PATTERN WHAT: exit CODE and PATTERN on exactly one line of $TMP/out.
once() {
    got=$(grep -c -- "$2" "$TMP/out")
    if [ "$code" -eq "$1" ] && [ "$got" -eq 1 ]; then
        ok "$3"
    else
        bad "$3: exit $code, $got lines with /$2/"; show "$TMP/out" 12
    fi
}
# one-process commands refuse mpirun, said once, before any file is written
# (small settings, so that a regression that runs them ends soon)
for args in "kernels --max-n 4096 --out k1 --benchmark_filter=^sumsq/scalar/" \
    'throughput --steps 1' 'convex --steps 10 --seeds 1 --problems 3:2 --out cv1' \
    'loader --data nodir' 'combine --out nodir'; do
    mpi2 $args
    code=$?
    cmd=${args%% *}
    once 2 "$cmd runs as one process, and mpirun started 2 ranks" "$cmd under mpirun: exit 2, said once"
done
[ ! -e k1 ] && [ ! -e cv1 ] && ok 'refused one-process commands wrote nothing' \
    || bad 'a refused one-process command created its --out'
mpi2 train $TINY --steps 4 --batch 15 --out odd
code=$?
once 2 '--batch 15: not divisible by the 2 ranks' 'an indivisible batch: exit 2, said once'
[ ! -d odd/runs ] && ok 'an indivisible batch leaves no run' || bad 'an indivisible batch left a run'
if [ -d killed-copy ]; then
    "$BENCH" train $LONG --out killed-copy --resume >"$TMP/out" 2>&1
    code=$?
    once 1 'checkpoint.bin: offset 244: rank count 2, this job has 1' \
        'a 2-rank checkpoint resumed by 1 process: refused, the file named, said once'
fi
kill_at_checkpoint one-ck train $LONG
if [ "$killed" = 1 ]; then
    mpi2 train $LONG --out "$out" --resume
    code=$?
    once 1 'checkpoint.bin: offset 244: rank count 1, this job has 2' \
        'a 1-process checkpoint resumed by 2 ranks: refused, the file named, said once'
else
    bad "no 1-process checkpoint to resume (killed=$killed)"
fi
mpi2 train $ORACLE --out one --resume
code=$?
once 2 'finished on 1 rank(s); this job has 2' \
    'a run finished by 1 process, --resume on 2 ranks: refused (not skipped), said once'

# ---- ablation on 2 ranks: each rank its share, rank 0 combines ---------------------
GRID="$(echo "$TINY" | sed 's/--quiet//') --optimizers amo,adam --lrs 1e-3,3e-3 --steps 4"
"$BENCH" ablation $GRID --out abl-one >"$TMP/out" 2>&1 || { bad 'ablation, one process'; show "$TMP/out"; }
mpi2 ablation $GRID --out abl-two || { bad 'ablation on 2 ranks'; show "$TMP/out" 12; }
s1=$(grep -c 'share 1/2 of the grid, 2 of its 4 runs' "$TMP/out")
s2=$(grep -c 'share 2/2 of the grid, 2 of its 4 runs' "$TMP/out")
[ "$s1" -eq 1 ] && [ "$s2" -eq 1 ] && ok 'ablation on 2 ranks: each rank ran its 2 runs' ||
    { bad "ablation on 2 ranks: shares said $s1 and $s2 times (expected once each)"; show "$TMP/out" 12; }
same_results abl-one abl-two 'ablation on 2 ranks = one process, every untimed column'
n1=$(ls abl-one/runs 2>/dev/null | wc -l); n2=$(ls abl-two/runs 2>/dev/null | wc -l)
[ "$n1" -eq 4 ] && [ "$n2" -eq 4 ] && ok 'ablation on 2 ranks: the 4 runs once each' ||
    bad "ablation runs: $n1 alone, $n2 on 2 ranks (expected 4 and 4)"
mpi2 ablation $GRID --shard 1/2 --out abl-never
code=$?
once 2 '--shard under mpirun' '--shard under mpirun: refused, said once'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
