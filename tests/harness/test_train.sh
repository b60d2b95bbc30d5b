#!/bin/sh
# amo-bench train and ablation on a tiny synthetic problem: the documented
# CSV columns and row counts, bit-identical reruns, kill -9 and --resume
# equal to an uninterrupted run, bad input refused (exit 2, the option named,
# nothing created or overwritten), a grid that skips finished runs, and
# resume refusing what it did not write (crafted and foreign checkpoints, a
# renamed optimizer state) and cleaning what a kill left beside a finished run.
#     sh tests/test_train.sh path/to/amo-bench path/to/ckpt-patch
# Prints one line per check and "N passed, N failed" at the end.  One thread
# throughout: the comparisons are exact.
set -u
BENCH=${1:?usage: test_train.sh AMO_BENCH CKPT_PATCH}
PATCH=${2:?usage: test_train.sh AMO_BENCH CKPT_PATCH}
case $BENCH in /*) ;; */*) BENCH=$(pwd)/$BENCH ;; esac # the tests run in $TMP
case $PATCH in /*) ;; */*) PATCH=$(pwd)/$PATCH ;; esac
. "$(dirname "$0")/harness_lib.sh"
unset OMP_NUM_THREADS # --threads alone must do
export OMP_WAIT_POLICY=passive
cd "$TMP" || exit 1 # the default --out is relative: never write elsewhere

# The smallest network and data set that still train.
TINY="--dataset synthetic --syn-n 256 --hw 8 --in-ch 1 --classes 4 --batch 16 --val 32
      --width 0.0625 --threads 1"
# (word splitting of $TINY and $LONG is intended)
# Run ids end in a hash of every setting: the runs below find theirs in OUT/runs.
RUN_ID=synthetic-r18w0.0625-amo-lr0.001-b0.9-g0.999-clip1-s1

# (awk: an `exit` in a rule still runs END, whose own exit wins: the checks
# below set `bad` instead.)
# The columns of harness/train.c: step_cols, cfg_cols + conv_cols,
# cfg_cols + sum_cols.
STEP_COLS=run_id,step,epoch,wall_s,data_ms,forward_ms,backward_ms,optimizer_ms,loss,lr,grad_norm,clipped,skipped,images_per_s,update_norm,at_bound,comm_ms
CFG_COLS=run_id,dataset,model,width,bf16,optimizer,lr,beta,gamma,eps,bias_correction,momentum,dampening,nesterov,alpha,clip,tau,lo,hi,weight_decay,decay_mode,schedule,warmup,label_smoothing,seed,batch,threads,kernel_level,conv_algo,ranks,sync_bn
CONV_COLS=$CFG_COLS,step,epoch,wall_s,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc
SUM_COLS=$CFG_COLS,steps,train_seconds,wall_s,images_per_s,final_val_loss,final_val_acc,best_val_acc,best_val_step,final_test_acc,clipped_steps,skipped_steps,diverged,data_ms,forward_ms,backward_ms,optimizer_ms
for k in 1 2 3 4; do
    SUM_COLS=$SUM_COLS,target$k,steps_to_target$k,seconds_to_target$k,reached_target$k
done


# A listing of every file under a directory with its checksum.
snapshot() { [ -d "$1" ] && (cd "$1" && find . -type f | LC_ALL=C sort | xargs cksum) || echo "no $1"; }


# ---- a tiny run: the files and their columns -----------------------------------
# 10 steps, evaluations at 4, 8 and 10 (the last one always).
expect 0 "$RUN_ID" 'tiny training run' -- train $TINY --steps 10 --eval-every 4 --out "$TMP/tiny"
# The summary table fits 100 columns, says what N+ means, and the progress
# line carries the last validation accuracy.
if awk '/^( #|[ 0-9][0-9]  )/ && length($0) > 100 { exit 1 }' "$TMP/out" \
    && grep -q '^ #  *val  *best  *test' "$TMP/out" && grep -q 'N+: not reached' "$TMP/out"; then
    ok 'summary table: 100 columns, N+ explained'
else
    bad 'summary table'; show "$TMP/out" 12
fi
grep -q "step 10/10 .* val [0-9.]*  " "$TMP/out" && ok 'progress shows val' \
    || { bad 'progress shows val'; show "$TMP/out"; }
dir=$TMP/tiny/runs/$(rid "$TMP/tiny")
for f in steps.csv convergence.csv summary.csv metadata.json; do
    [ -s "$dir/$f" ] || bad "missing $dir/$f"
done
header() { # FILE COLUMNS WHAT
    got=$(head -n 1 "$1" 2>/dev/null)
    if [ "$got" = "$2" ]; then ok "$3 header"; else bad "$3 header"; echo "    got:  $got"; echo "    want: $2"; fi
}
header "$dir/steps.csv" "$STEP_COLS" steps.csv
header "$dir/convergence.csv" "$CONV_COLS" convergence.csv
header "$dir/summary.csv" "$SUM_COLS" summary.csv
# rows: steps 1..10 in order, each with a loss; evaluations at 4, 8, 10, the
# test set only at the last; one summary row of 10 steps; every row as wide
# as its header.
if awk -F, 'NR == 1 { nf = NF; next } { n++; if (NF != nf || $2 != n || $9 == "") exit 1 }
            END { exit n == 10 ? 0 : 1 }' "$dir/steps.csv" 2>/dev/null; then
    ok 'steps.csv: one row per step'
else
    bad 'steps.csv rows'; show "$dir/steps.csv" 12
fi
if awk -F, 'NR == 1 { nf = NF; next }
            { n++; s = s $32 ","; if (NF != nf || $38 == "") bad = 1
              if (n < 3 && $40 != "") bad = 1; if (n == 3 && $40 == "") bad = 1 }
            END { exit !bad && n == 3 && s == "4,8,10," ? 0 : 1 }' "$dir/convergence.csv" 2>/dev/null; then
    ok 'convergence.csv: one row per evaluation'
else
    bad 'convergence.csv rows'; show "$dir/convergence.csv"
fi
if awk -F, 'NR == 1 { nf = NF; next } { n++; if (NF != nf || $32 != 10 || $27 != 1) bad = 1 }
            END { exit !bad && n == 1 ? 0 : 1 }' "$dir/summary.csv" 2>/dev/null; then
    ok 'summary.csv: one row, 10 steps, 1 thread'
else
    bad 'summary.csv rows'; show "$dir/summary.csv"
fi
missing=
for key in command run_id date_utc amo_version git_commit kernel_level cpu_detected_level \
           onednn_isa onednn_version dtype parameters topology threads train_examples \
           val_examples test_examples total_steps eval_every; do
    grep -q "^  \"$key\": " "$dir/metadata.json" 2>/dev/null || missing="$missing $key"
done
if [ -z "$missing" ] && grep -q '"command": ".* train .*--steps 10' "$dir/metadata.json" &&
   grep -q '"total_steps": 10,' "$dir/metadata.json" && grep -q '"val_examples": 32,' "$dir/metadata.json"; then
    ok 'metadata.json'
else
    bad "metadata.json (missing:$missing)"; show "$dir/metadata.json" 30
fi
# The combined files of a one-run OUT are that run's files.
if cmp -s "$TMP/tiny/steps.csv" "$dir/steps.csv" && cmp -s "$TMP/tiny/summary.csv" "$dir/summary.csv" &&
   cmp -s "$TMP/tiny/convergence.csv" "$dir/convergence.csv"; then
    ok 'combined CSVs'
else
    bad 'combined CSVs differ from the run'"'"'s'
fi

# ---- --init and --test-at-best: new settings that leave old runs alone ------------
# The tiny run's id, hash included, as the binary before these options made
# it (commit 8712621): a setting at its default enters no hash, so every
# earlier study's ids and --resume still match.
[ "$(rid "$TMP/tiny")" = "$RUN_ID-6f061b89" ] && ok 'run id unchanged by --init/--test-at-best' \
    || bad "run id $(rid "$TMP/tiny"), expected $RUN_ID-6f061b89"
expect 0 "$RUN_ID" '--init he (the default)' -- train $TINY --steps 10 --eval-every 4 --init he \
    --out "$TMP/init-he"
[ "$(rid "$TMP/init-he")" = "$RUN_ID-6f061b89" ] && same_results "$TMP/tiny" "$TMP/init-he" \
    '--init he: the same id and results as no --init'
expect 0 'torchinit' '--init torch' -- train $TINY --steps 10 --eval-every 4 --init torch \
    --out "$TMP/init-torch"
case $(rid "$TMP/init-torch") in
    synthetic-r18w0.0625-torchinit-amo-*) ok '--init torch: named in the run id' ;;
    *) bad "--init torch: run id $(rid "$TMP/init-torch")" ;;
esac
untimed "$TMP/tiny/steps.csv" | cut -d, -f2- >"$TMP/a.csv"
untimed "$TMP/init-torch/steps.csv" | cut -d, -f2- >"$TMP/b.csv"
cmp -s "$TMP/a.csv" "$TMP/b.csv" && bad '--init torch: the same losses as he' \
    || ok '--init torch: other weights, other losses'
grep -q '"init": "torch"' "$TMP/init-torch"/runs/*/metadata.json && ok '--init in metadata.json' \
    || bad '--init not in metadata.json'
expect 0 "$RUN_ID" '--test-at-best' -- train $TINY --steps 10 --eval-every 4 --test-at-best \
    --out "$TMP/at-best"
# Training is untouched (only the id's hash differs); the test set is
# evaluated at exactly the rows with a new best validation accuracy, and at
# the last.
sed "s/-6f061b89,/,/" "$TMP/tiny/steps.csv" | untimed /dev/stdin >"$TMP/a.csv"
sed "s/-$(rid "$TMP/at-best" | sed 's/.*-//'),/,/" "$TMP/at-best/steps.csv" | untimed /dev/stdin >"$TMP/b.csv"
if [ "$(rid "$TMP/at-best")" != "$RUN_ID-6f061b89" ] && cmp -s "$TMP/a.csv" "$TMP/b.csv" &&
   awk -F, 'NR == 1 { next } { n++; best = n == 1 || $38 > top; if (best) top = $38
             if ((best || n == 3) != ($40 != "")) bad = 1 } END { exit !bad && n == 3 ? 0 : 1 }' \
       "$TMP/at-best/convergence.csv"; then
    ok '--test-at-best: the same training, the test set at each new best'
else
    bad '--test-at-best'; show "$TMP/at-best/convergence.csv"
fi
if [ ! -d "$dir" ] || ls "$dir" | grep -Eq 'checkpoint|optim-|\.tmp' || ls -A "$TMP/tiny" | grep -q '^\.'; then
    bad 'leftovers after a finished run'; ls -A "$dir" "$TMP/tiny"
else
    ok 'no checkpoint or temporaries left'
fi

# A finished run is not run again: without --resume a usage error and not a
# byte changed; with --resume skipped.
snapshot "$TMP/tiny" >"$TMP/before"
expect 2 "run $RUN_ID-[0-9a-f]+ is already there; pass --resume" 'rerun without --resume' \
    -- train $TINY --steps 10 --eval-every 4 --out "$TMP/tiny"
snapshot "$TMP/tiny" >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" && ok 'refused rerun changed nothing' || {
    bad 'refused rerun changed files'; diff "$TMP/before" "$TMP/after"; }
expect 0 'finished before, skipped' 'finished run with --resume' \
    -- train $TINY --steps 10 --eval-every 4 --out "$TMP/tiny" --resume
snapshot "$TMP/tiny" >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" && ok 'skipped run changed nothing' || {
    bad 'skipped run changed files'; diff "$TMP/before" "$TMP/after"; }

# ---- determinism, and kill -9 + --resume ------------------------------------------
# Long enough (300 steps, about 1 ms each on an idle machine) that the run is
# still going when the first checkpoint (step 30) has been seen.
LONG="$TINY --steps 300 --eval-every 10 --checkpoint-every 30 --quiet"
"$BENCH" train $LONG --out "$TMP/ref" >"$TMP/out" 2>&1 || { bad 'reference run'; show "$TMP/out"; }
"$BENCH" train $LONG --out "$TMP/again" >"$TMP/out" 2>&1 || { bad 'second run'; show "$TMP/out"; }
same_results "$TMP/ref" "$TMP/again" 'two identical runs agree'
n=$(awk 'END { print NR - 1 }' "$TMP/ref/steps.csv" 2>/dev/null)
[ "$n" = 300 ] && ok 'steps.csv: 300 rows' || bad "steps.csv: $n rows, expected 300"
n=$(awk 'END { print NR - 1 }' "$TMP/ref/convergence.csv" 2>/dev/null)
[ "$n" = 30 ] && ok 'convergence.csv: 30 rows' || bad "convergence.csv: $n rows, expected 30"

# Kill it (SIGKILL: no cleanup) once a checkpoint is there.
kill_at_checkpoint "$TMP/killed" train $LONG
if [ "$killed" = 0 ]; then
    bad 'the run always finished before it could be killed'
elif [ "$killed" = 2 ]; then
    bad "no checkpoint.bin in $out/runs/$(rid "$out")"; show "$TMP/out"
else
    ok "killed after a checkpoint (try $try)"
    case $nthreads in
        0) echo "    (thread count not measured: no /proc/PID/task)" ;;
        1) ok '--threads 1: one thread' ;;
        *) bad "--threads 1: $nthreads threads" ;;
    esac
    rundir=$out/runs/$(rid "$out")
    # no --resume: refused, and the checkpoint and the rows so far kept
    snapshot "$out" >"$TMP/before"
    expect 2 'pass --resume' 'interrupted run without --resume' -- train $LONG --out "$out"
    snapshot "$out" >"$TMP/after"
    cmp -s "$TMP/before" "$TMP/after" && ok 'interrupted run untouched' || {
        bad 'refusal changed the interrupted run'; diff "$TMP/before" "$TMP/after"; }
    # a damaged checkpoint is refused, naming it (on a copy)
    cp -R "$out" "$TMP/damaged"
    ck=$TMP/damaged/runs/$(rid "$TMP/damaged")/checkpoint.bin
    size=$(wc -c <"$ck")
    head -c $((size - 100)) "$ck" >"$ck.cut" && mv "$ck.cut" "$ck"
    expect 1 "checkpoint.bin: .*(truncated|corrupted)" 'truncated checkpoint' \
        -- train $LONG --out "$TMP/damaged" --resume
    # what a kill inside a writer leaves behind: gone once the run finishes
    for f in .checkpoint.bin.4321.0.tmp .optim-999.state.4321.1.tmp .metadata.json.4321.2.tmp \
             .steps.csv.4321.3.tmp; do
        echo partial >"$rundir/$f"
    done
    # --resume: the rest of the run, and the same results as without the kill
    expect 0 'resumed at step [1-9][0-9]*' 'resume after kill -9' \
        -- train $(echo "$LONG" | sed 's/--quiet//') --out "$out" --resume
    grep -o 'resumed at step [0-9]*' "$TMP/out" | sed 's/^/    (/; s/$/)/'
    same_results "$TMP/ref" "$out" 'killed and resumed = uninterrupted'
    if ls -A "$rundir" | grep -Eq 'checkpoint|optim-|\.tmp|^\.'; then
        bad 'checkpoint or temporaries left after the resumed run'; ls -A "$rundir"
    else
        ok 'checkpoint and temporaries removed at the end'
    fi
fi

# ---- resume trusts nothing it did not write ------------------------------------------
# An interrupted run made deterministically: a directory where the run's
# steps.csv goes stops it with an error right after its first checkpoint
# (the checkpoint is written before the CSVs), as a kill there would.
SHORT="$TINY --steps 40 --eval-every 10 --quiet"
# id_of OUT ARGS...: the run id of ARGS, from a whole run into OUT (a run
# that fails leaves no id, and interrupted says so).
id_of() {
    o=$1
    shift
    "$BENCH" train "$@" --out "$o" >/dev/null 2>&1
    rid "$o"
}
# interrupted OUT STEP ID ARGS...: OUT/runs/ID as a kill after the
# checkpoint at STEP leaves it (checkpoint.bin, optim-STEP.state).
interrupted() {
    o=$1 at=$2 i=$3
    shift 3
    mkdir -p "$o/runs/$i/steps.csv"
    "$BENCH" train "$@" --checkpoint-every "$at" --out "$o" >/dev/null 2>&1
    rmdir "$o/runs/$i/steps.csv"
    [ -f "$o/runs/$i/checkpoint.bin" ] && [ -f "$o/runs/$i/optim-$at.state" ] ||
        bad "no checkpoint at step $at in $o/runs/$i"
}
ID=$(id_of "$TMP/ref40" $SHORT)
interrupted "$TMP/i20" 20 "$ID" $SHORT
interrupted "$TMP/i10" 10 "$ID" $SHORT
interrupted "$TMP/s2" 20 "$(id_of "$TMP/id-s2" $SHORT --seed 2)" $SHORT --seed 2
interrupted "$TMP/adam" 20 "$(id_of "$TMP/id-adam" $SHORT --optimizer adam)" $SHORT --optimizer adam
I20=$TMP/i20/runs/$ID
# the untouched copy resumes to the uninterrupted result
cp -R "$TMP/i20" "$TMP/r20"
expect 0 'resumed at step 20' 'deterministic interruption resumes' \
    -- train $(echo "$SHORT" | sed 's/--quiet//') --out "$TMP/r20" --resume
same_results "$TMP/ref40" "$TMP/r20" 'interrupted at 20 and resumed = uninterrupted'

# crafted checkpoints whose checksum is right: the position in the epoch at
# offset 268 (14 batches of 16 per epoch; 20 steps end at 96)
for pos in -5 100000; do
    cp -R "$TMP/i20" "$TMP/pos$pos"
    "$PATCH" "$TMP/pos$pos/runs/$ID/checkpoint.bin" 268 "$pos"
    expect 1 "checkpoint.bin: offset 268: in-epoch position $pos outside \[0, 224\]" \
        "checkpoint with in-epoch position $pos" -- train $SHORT --out "$TMP/pos$pos" --resume
done
cp -R "$TMP/i20" "$TMP/pos32"
"$PATCH" "$TMP/pos32/runs/$ID/checkpoint.bin" 268 32
expect 1 'checkpoint.bin: offset 268: in-epoch position 32, but 20 steps end at 96' \
    'checkpoint with a position not its step'"'"'s' -- train $SHORT --out "$TMP/pos32" --resume
# a checkpoint of another run of the same model beside this run's own state
# (another seed, another optimizer)
for other in s2 adam; do
    cp "$I20/checkpoint.bin" "$TMP/$other/runs/$(rid "$TMP/$other")/checkpoint.bin"
done
expect 1 'checkpoint.bin: offset 12: run id ".*-s1-[0-9a-f]+", expected ".*-s2-[0-9a-f]+"' \
    'checkpoint of another seed' -- train $SHORT --seed 2 --out "$TMP/s2" --resume
expect 1 'checkpoint.bin: offset 12: run id ".*-amo-.*", expected ".*-adam-.*"' \
    'checkpoint of another optimizer' -- train $SHORT --optimizer adam --out "$TMP/adam" --resume
# optim-10.state renamed to optim-20.state
cp -R "$TMP/i20" "$TMP/renamed"
cp "$TMP/i10/runs/$ID/optim-10.state" "$TMP/renamed/runs/$ID/optim-20.state"
expect 1 'optim-20.state: 10 steps .*checkpoint.bin is at step 20 .*not the state saved with it' \
    'state file renamed from step 10' -- train $SHORT --out "$TMP/renamed" --resume

# A kill between the summary's rename and the checkpoint's removal: the run
# finished, its checkpoint and state stayed.  Skipping it removes them and
# keeps its results.
cp -R "$TMP/ref40" "$TMP/left"
L=$TMP/left/runs/$ID
cp "$I20/checkpoint.bin" "$I20/optim-20.state" "$L/"
echo partial >"$L/checkpoint.bin.tmp"
expect 0 'finished before, skipped' 'finished run with a leftover checkpoint' \
    -- train $(echo "$SHORT" | sed 's/--quiet//') --out "$TMP/left" --resume
if ls -A "$L" | grep -Eq 'checkpoint|optim-|\.tmp'; then
    bad 'leftover checkpoint kept by the skip'; ls -A "$L"
else
    ok 'leftover checkpoint and state removed by the skip'
fi
same_results "$TMP/ref40" "$TMP/left" 'skipped run with leftovers: results unchanged'

# ---- bad input: exit 2, the option and the value named, nothing written ------------
: >"$TMP/file"
B=$TMP/bad
expect 2 "unknown option '--bogus'" 'train: unknown option' -- train $TINY --bogus --out "$B"
expect 2 "--lr '-1'" '--lr -1' -- train $TINY --lr -1 --out "$B"
expect 2 "--lr 'abc'" '--lr abc' -- train $TINY --lr abc --out "$B"
expect 2 "option '--lr' needs a value" '--lr without a value' -- train $TINY --out "$B" --lr
expect 2 "--model: unknown value 'resnet99'" '--model resnet99' -- train $TINY --model resnet99 --out "$B"
expect 2 "--width '0'" '--width 0' -- train $TINY --width 0 --out "$B"
expect 2 "--steps: .*'0'" '--steps 0' -- train $TINY --steps 0 --out "$B"
expect 2 "--batch 1000: larger than the 224 training examples" '--batch 1000' \
    -- train $TINY --batch 1000 --steps 1 --out "$B"
expect 2 "--dataset cifar10 needs --data" 'cifar10 without --data' \
    -- train $TINY --dataset cifar10 --steps 1 --out "$B"
expect 2 "--data /nonexistent: .*dataset-fashion-mnist" 'fashion --data /nonexistent' \
    -- train $TINY --dataset fashion --data /nonexistent --steps 1 --out "$B"
expect 2 "--data /nonexistent: .*data_batch_1.bin" 'cifar10 --data /nonexistent' \
    -- train $TINY --dataset cifar10 --data /nonexistent --steps 1 --out "$B"
expect 2 "--optimizers: only 'ablation'" 'grid list given to train' \
    -- train $TINY --optimizers amo,adam --out "$B"
expect 2 "--optimizers: unknown value 'bogus'" 'ablation --optimizers amo,bogus' \
    -- ablation $TINY --optimizers amo,bogus --out "$B"
expect 2 "--out /proc/x" '--out /proc/x' -- train $TINY --steps 1 --out /proc/x
expect 2 "--out $TMP/file" '--out a file' -- train $TINY --steps 1 --out "$TMP/file"
expect 2 "--out $TMP/file/sub" '--out under a file' -- train $TINY --steps 1 --out "$TMP/file/sub"
if [ -e "$B/runs" ] || [ -e "$TMP/amo-runs" ]; then
    bad 'refused runs left directories'; find "$B" "$TMP/amo-runs" 2>/dev/null | head
else
    ok 'refused runs left no run directories'
fi
expect 2 "--val: .*'0'" '--val 0' -- train $TINY --val 0 --steps 1 --out "$B"
expect 2 "--val 32: no validation examples" 'no validation examples (--syn-n 9)' \
    -- train $TINY --syn-n 9 --batch 4 --steps 1 --out "$B"
# 20 raw IDX images all of class 0: the default --val 5000 shrinks to 2, one
# from each of classes 0 and 1, and class 1 has none.  The message names the 2.
D=$TMP/one-class
mkdir -p "$D"
for set in train t10k; do
    { printf '\0\0\10\3\0\0\0\24\0\0\0\10\0\0\0\10'; head -c 1280 /dev/zero; } >"$D/$set-images-idx3-ubyte"
    { printf '\0\0\10\1\0\0\0\24'; head -c 20 /dev/zero; } >"$D/$set-labels-idx1-ubyte"
done
expect 2 "--val 5000, shrunk to 2 for 20 training examples: validation size 2: .*too small" \
    'one class: the shrunk --val named' -- train --dataset mnist --data "$D" --steps 1 --out "$B"

# ---- ablation: a 2-run grid, then the same grid again ---------------------------------
A=$TMP/abl
expect 0 '\[2/2\]' 'ablation amo,adam' -- ablation $TINY --optimizers amo,adam --steps 4 --out "$A"
rows=$(tail -n +2 "$A/summary.csv" 2>/dev/null | cut -d, -f6 | tr '\n' ' ')
[ "$rows" = "adam amo " ] && ok 'ablation: 2 summary rows' || { bad "ablation summary rows: '$rows'"; show "$A/summary.csv"; }
header "$A/summary.csv" "$SUM_COLS" 'ablation summary.csv'
n=$(tail -n +2 "$A/steps.csv" 2>/dev/null | wc -l)
[ "$n" -eq 8 ] && ok 'ablation: 8 step rows' || bad "ablation: $n step rows, expected 8"
snapshot "$A" >"$TMP/before"
"$BENCH" ablation $TINY --optimizers amo,adam --steps 4 --out "$A" >"$TMP/out" 2>&1
code=$?
n=$(grep -c 'finished before, skipped' "$TMP/out")
[ $code -eq 0 ] && [ "$n" -eq 2 ] && ok 'ablation rerun skips both runs' || {
    bad "ablation rerun: exit $code, $n skipped"; show "$TMP/out"; }
snapshot "$A" >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" && ok 'ablation rerun: same files, still 2 rows' || {
    bad 'ablation rerun changed files'; diff "$TMP/before" "$TMP/after"; }

# ---- a sharded grid: shares 1/3, 2/3, 3/3 into one OUT, then combine ----------------------
# (the 2-run grid above has shares of 1, 1 and 0 runs: the empty share must do nothing)
S=$TMP/shard
for k in 1 2 3; do
    "$BENCH" ablation $TINY --optimizers amo,adam --steps 4 --shard $k/3 --out "$S" >"$TMP/out.$k" 2>&1 ||
        { bad "ablation --shard $k/3: exit $?"; show "$TMP/out.$k"; }
done
n1=$(grep -c '^\[' "$TMP/out.1"); n3=$(grep -c '^\[' "$TMP/out.3")
[ "$n1" -eq 1 ] && [ "$n3" -eq 0 ] && ok 'ablation --shard: 1, 1 and 0 runs' ||
    { bad "ablation --shard: share 1 ran $n1, share 3 ran $n3"; show "$TMP/out.1"; }
"$BENCH" combine --out "$S" >/dev/null 2>&1
same_results "$A" "$S" 'ablation in 3 shares + combine = unsharded'
S2=$TMP/shard-slurm
for k in 7 8; do # a Slurm array 7-8: tasks 7 and 8 are shares 1/2 and 2/2
    SLURM_ARRAY_TASK_ID=$k SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=7 SLURM_ARRAY_TASK_MAX=8 \
        "$BENCH" ablation $TINY --optimizers amo,adam --steps 4 --shard slurm --out "$S2" \
        >"$TMP/out.$k" 2>&1
done
"$BENCH" combine --out "$S2" >/dev/null 2>&1
grep -q 'share 2/2' "$TMP/out.8" && same_results "$A" "$S2" 'ablation as a Slurm array 7-8 = unsharded' ||
    { bad 'Slurm array task 8 is not share 2/2'; show "$TMP/out.8"; }
for bad_shard in 0/2 3/2 2 1/0 1/2x; do
    expect 2 "--shard '$bad_shard': expected K/N" "--shard $bad_shard refused" \
        -- ablation $TINY --shard $bad_shard --out "$TMP/never"
done
expect 2 'SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not set' \
    '--shard slurm outside an array refused' -- ablation $TINY --shard slurm --out "$TMP/never"
export SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_COUNT=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_MAX=5
expect 2 'not a contiguous range: give --shard' 'Slurm array 1-5:2 refused' \
    -- ablation $TINY --shard slurm --out "$TMP/never"
# without --shard an array task runs the whole grid: the array may be doing something else
n=$("$BENCH" ablation $TINY --optimizers amo,adam --steps 4 --out "$TMP/whole" 2>&1 | grep -c '^\[')
[ "$n" -eq 2 ] && ok 'ablation in an array task without --shard: the whole grid' ||
    bad "ablation in an array task without --shard ran $n of 2 runs"
unset SLURM_ARRAY_TASK_ID SLURM_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_MIN SLURM_ARRAY_TASK_MAX
[ ! -e "$TMP/never" ] && ok 'refused shards created nothing' || bad 'a refused shard created files'

# ---- the update size (steps.csv update_norm, at_bound) against formulas ---------------
# Step 1 from zero moments: Adam moves each parameter by lr*g/(|g|+eps) ~ lr,
# AMO (no bias correction) by lr*(1-beta)/sqrt(1-gamma) ~ 3.16228 lr, so the
# norms' ratio is 3.16228 (parameters with a zero gradient move in neither).
# With bounds +-1e-6 every parameter ends on one, except those that stay at 0
# (a batch-norm shift with a zero gradient).
U=$TMP/upd
"$BENCH" train $TINY --optimizer adam --steps 1 --out "$U" --quiet >/dev/null 2>&1
"$BENCH" train $TINY --optimizer amo --clip off --steps 1 --out "$U" --quiet >/dev/null 2>&1
"$BENCH" train $TINY --optimizer amo --clip off --bounds -1e-6,1e-6 --steps 1 --out "$U" --quiet >/dev/null 2>&1
r=$(awk -F, 'NR > 1 && $1 ~ /-adam-/ { a = $15 } NR > 1 && $1 ~ /-amo-.*noclip-s1-/ { m = $15 }
             END { if (a > 0) printf "%.5f", m / a }' "$U/steps.csv" 2>/dev/null)
awk -v r="$r" 'BEGIN { exit !(r > 3.16228 * 0.99 && r < 3.16228 * 1.01) }' \
    && ok "step 1: AMO/Adam update norm $r (formula 3.16228)" \
    || { bad "step 1: AMO/Adam update norm '$r', expected 3.16228 +-1%"; show "$U/steps.csv"; }
n=$(sed -n 's/.*"parameters": \([0-9]*\).*/\1/p' "$U"/runs/*-bounds-*/metadata.json 2>/dev/null)
b=$(awk -F, 'NR > 1 && $1 ~ /-bounds-/ { print $16 }' "$U/steps.csv" 2>/dev/null)
awk -v n="$n" -v b="$b" 'BEGIN { exit !(n > 0 && b > 0.99 * n && b <= n) }' \
    && ok "bounds +-1e-6: $b of the $n parameters on a bound" \
    || bad "bounds +-1e-6: at_bound '$b', expected about $n"
# combine: rebuilds the combined CSVs from the runs alone
rm -f "$U/steps.csv" "$U/summary.csv" "$U/convergence.csv"
"$BENCH" combine --out "$U" >/dev/null 2>&1
n=$(tail -n +2 "$U/summary.csv" 2>/dev/null | wc -l)
[ "$n" -eq 3 ] && ok 'combine: 3 runs back in summary.csv' || bad "combine: $n summary rows, expected 3"
expect 2 "--out $TMP/none: no runs/" 'combine --out without runs' -- combine --out "$TMP/none"

# ---- --sync-bn in one process: the same as plain batch norm ---------------------
# Its arithmetic (statistics summed as n mean and n (var + mean^2), backward
# corrected from the summed dy and dy xhat) over one process's batch, against
# oneDNN's own batch norm; the ranks' version is tests/harness/test_mpi.sh's.
# SGD without augmentation: one process's rounding stays small there.
ORACLE="$TINY --steps 16 --eval-every 16 --optimizer sgd --lr 0.01 --no-augment --quiet"
"$BENCH" train $ORACLE --out "$TMP/bn-plain" >/dev/null 2>&1
"$BENCH" train $ORACLE --sync-bn --out "$TMP/bn-sync" >/dev/null 2>&1
worst=$(paste -d, "$TMP/bn-plain/steps.csv" "$TMP/bn-sync/steps.csv" | awk -F, -v n=17 '
    NR == 1 { for (i = 1; i <= n; i++) if ($i == "loss") l = i }
    NR > 1 { d = ($l - $(l + n)) / $l; d = d < 0 ? -d : d; if (d > w) w = d }
    END { printf "%.2e", NR == 17 ? w : 1 }')
awk -v w="$worst" 'BEGIN { exit !(w <= 1e-4) }' \
    && ok "--sync-bn alone = plain batch norm (16 steps, loss within $worst)" \
    || bad "--sync-bn alone: loss differs by $worst (relative) from plain batch norm"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
