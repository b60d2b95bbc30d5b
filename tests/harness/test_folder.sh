#!/bin/sh
# amo-bench train --dataset folder on small ImageFolder trees written by
# mktree: the run's files, the same results at 0, 1 and 3 loader threads,
# kill -9 + --resume equal to an uninterrupted run (the data order
# continues exactly), val/ held out of train/ when there is none, and bad
# trees and files refused by name (exit 2 for a wrong --data, 1 for a
# broken file found while training), never a crash.
#     sh tests/test_folder.sh path/to/amo-bench path/to/mktree
set -u
BENCH=${1:?usage: test_folder.sh AMO_BENCH MKTREE}
MKTREE=${2:?usage: test_folder.sh AMO_BENCH MKTREE}
case $BENCH in /*) ;; */*) BENCH=$(pwd)/$BENCH ;; esac
case $MKTREE in /*) ;; */*) MKTREE=$(pwd)/$MKTREE ;; esac
. "$(dirname "$0")/harness_lib.sh"
unset OMP_NUM_THREADS
export OMP_WAIT_POLICY=passive
cd "$TMP" || exit 1

"$MKTREE" "$TMP/tree" 3 12 4 small 1 || { bad 'mktree'; exit 1; }
TINY="--dataset folder --data $TMP/tree --image-size 32 --batch 4 --width 0.0625 --threads 1
      --quiet"

# ---- a run, and the thread count changes nothing ---------------------------------
"$BENCH" train $TINY --steps 12 --eval-every 6 --out "$TMP/t2" >"$TMP/out" 2>&1 \
    && ok 'folder run, 2 loader threads (the default)' || { bad 'folder run'; show "$TMP/out"; }
dir=$TMP/t2/runs/$(rid "$TMP/t2")
grep -q '"val_examples": 12' "$dir/metadata.json" && grep -q '"train_examples": 36' "$dir/metadata.json" \
    && ok 'val/ is the validation set (12), train/ all 36' \
    || { bad 'example counts'; grep examples "$dir/metadata.json"; }
grep -q '"loader_threads": 2' "$dir/metadata.json" && grep -q '"classes": 3' "$dir/metadata.json" \
    && ok 'metadata.json: loader threads, classes' || bad 'metadata.json: loader threads'
n=$(awk 'END { print NR - 1 }' "$TMP/t2/steps.csv")
[ "$n" = 12 ] && ok 'steps.csv: 12 rows' || bad "steps.csv: $n rows"
for t in 0 1 3; do
    "$BENCH" train $TINY --steps 12 --eval-every 6 --loader-threads $t --out "$TMP/t$t" \
        >"$TMP/out" 2>&1 || { bad "--loader-threads $t"; show "$TMP/out"; }
done
same_results "$TMP/t2" "$TMP/t0" '--loader-threads 0 = 2'
same_results "$TMP/t2" "$TMP/t1" '--loader-threads 1 = 2'
same_results "$TMP/t2" "$TMP/t3" '--loader-threads 3 = 2'

# ---- kill -9 and --resume ------------------------------------------------------------
LONG="$TINY --steps 90 --eval-every 9 --checkpoint-every 9"
"$BENCH" train $LONG --out "$TMP/ref" >"$TMP/out" 2>&1 || { bad 'reference run'; show "$TMP/out"; }
kill_at_checkpoint "$TMP/killed" train $LONG
if [ "$killed" = 1 ]; then
    ok "killed after a checkpoint (try $try)"
    expect 0 'resumed at step [1-9]' 'resume after kill -9' \
        -- train $(echo "$LONG" | sed 's/--quiet//') --out "$out" --resume
    same_results "$TMP/ref" "$out" 'killed and resumed = uninterrupted'
else
    bad 'the run always finished before it could be killed'
fi

# ---- no val/: --val images held out of train/ ----------------------------------------
"$MKTREE" "$TMP/noval" 3 10 0 small 2 >/dev/null
"$BENCH" train --dataset folder --data "$TMP/noval" --image-size 32 --batch 4 --width 0.0625 \
    --threads 1 --val 6 --steps 2 --quiet --out "$TMP/nv" >"$TMP/out" 2>&1 \
    || { bad 'no val/'; show "$TMP/out"; }
grep -q '"val_examples": 6' "$TMP/nv/runs/"*/metadata.json \
    && grep -q '"train_examples": 24' "$TMP/nv/runs/"*/metadata.json \
    && ok '--val 6: 6 validation, 24 training' || bad 'held-out counts'

# ---- the ImageNet preset, shrunk by the options after it ----------------------------
"$BENCH" train --preset imagenet-resnet50 --data "$TMP/tree" --width 0.0625 --batch 4 \
    --image-size 32 --threads 1 --steps 2 --quiet --out "$TMP/preset" >"$TMP/out" 2>&1 \
    || { bad 'preset run'; show "$TMP/out"; }
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i }
         NR == 2 { exit !($col["model"] == "resnet50" && $col["optimizer"] == "amo" &&
                          $col["clip"] == 1 && $col["tau"] == 0.5 && $col["schedule"] == "cosine" &&
                          $col["batch"] == 4) }' "$TMP/preset/summary.csv" \
    && ok '--preset imagenet-resnet50: resnet50, AMO, tau 0.5, cosine; --batch after it wins' \
    || { bad 'preset settings'; head -2 "$TMP/preset/summary.csv" | cut -c1-300; }

# ---- bad input ---------------------------------------------------------------------------
# (9 steps: the whole of train/, so the broken file below is met)
RUN="--dataset folder --image-size 32 --batch 4 --width 0.0625 --threads 1 --steps 9"
expect 2 'dataset folder needs --data DIR' 'no --data' -- train $RUN --out "$TMP/bad"
expect 2 "$TMP/none/train: No such file" 'no DIR/train' -- train $RUN --data "$TMP/none" --out "$TMP/bad"
cp -r "$TMP/tree" "$TMP/empty"
mkdir "$TMP/empty/train/c999"
expect 1 "empty/train/c999: a class folder with no image files" 'an empty class folder' \
    -- train $RUN --data "$TMP/empty" --out "$TMP/bad"
cp -r "$TMP/tree" "$TMP/extra"
mkdir "$TMP/extra/val/zzz"
expect 1 "extra/val/zzz: a class the training set does not have" 'a val/ class not in train/' \
    -- train $RUN --data "$TMP/extra" --out "$TMP/bad"
# skipped with a count: a FIFO and a symlink loop; ignored: a text file
cp -r "$TMP/tree" "$TMP/odd"
mkfifo "$TMP/odd/train/c000/fifo.JPEG"
ln -s .. "$TMP/odd/train/c001/loop"
echo x >"$TMP/odd/train/c002/notes.txt"
expect 0 'train: 36 images in 3 classes; skipped: 1 not regular files, 1 symlink loops; 1 files' \
    'FIFO and loop skipped, counted' -- train $(echo "$RUN" | sed 's/--quiet//') --data "$TMP/odd" --out "$TMP/odd-out"
# broken files: the run stops naming the file (a truncated JPEG, text)
for kind in cut text; do
    cp -r "$TMP/tree" "$TMP/$kind"
    f=$TMP/$kind/train/c001/00003.JPEG
    if [ $kind = cut ]; then
        size=$(wc -c <"$TMP/tree/train/c001/00003.JPEG")
        head -c $((size / 2)) "$TMP/tree/train/c001/00003.JPEG" >"$f"
        msg="c001/00003.JPEG: JPEG data: "
    else
        echo '<html>' >"$f"
        msg="c001/00003.JPEG: not a JPEG or PNG"
    fi
    expect 1 "$msg" "a $kind file in train/" -- train $RUN --data "$TMP/$kind" --out "$TMP/bad-$kind"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
