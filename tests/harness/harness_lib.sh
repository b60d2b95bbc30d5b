# Sourced by the harness test scripts (tests/test_harness_cli.sh, test_folder.sh,
# tests/test_train.sh) after they set BENCH: a temporary directory removed
# on exit, the check counters, `expect`, and for runs `rid`, `untimed` and
# `same_results`.  Each script ends with
#     echo "$pass passed, $fail failed"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/amo-bench-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
unset AMO_ARCH
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
show() { sed 's/^/    /' "$1" | head -"${2:-5}"; }

# expect CODE PATTERN DESCRIPTION -- ARGS...: exit status CODE and PATTERN
# (grep -E) somewhere in stdout+stderr.
expect() {
    code=$1 pattern=$2 what=$3
    shift 4
    "$BENCH" "$@" >"$TMP/out" 2>&1
    got=$?
    if [ "$got" -ne "$code" ]; then
        bad "$what: exit $got, expected $code"; show "$TMP/out"
    elif ! grep -Eq -- "$pattern" "$TMP/out"; then
        bad "$what: output lacks /$pattern/"; show "$TMP/out"
    else
        ok "$what"
    fi
}

# The run directory's name under OUT/runs (one run per OUT).
rid() { ls "$1/runs" 2>/dev/null | head -n 1; }

# A CSV without its timing columns (named in the header): what two runs of
# the same command must agree on exactly.
untimed() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++)
                           keep[i] = $i !~ /^(wall_s|.*_ms|images_per_s|train_seconds|seconds_to_target[0-9])$/ }
             { s = ""; for (i = 1; i <= NF; i++) if (keep[i]) s = s $i ","; print s }' "$1"
}

# same_results A B WHAT: A and B (OUT directories) agree on every untimed
# column of the three combined CSVs.
same_results() {
    for f in steps convergence summary; do
        untimed "$1/$f.csv" >"$TMP/a.csv" 2>/dev/null
        untimed "$2/$f.csv" >"$TMP/b.csv" 2>/dev/null
        if [ ! -s "$TMP/a.csv" ] || ! cmp -s "$TMP/a.csv" "$TMP/b.csv"; then
            bad "$3: $f.csv differs"; diff "$TMP/a.csv" "$TMP/b.csv" | head -6 | cut -c1-200
            return
        fi
    done
    ok "$3"
}

# kill_at_checkpoint PREFIX ARGS...: amo-bench ARGS --out PREFIX$try in the
# background, killed (SIGKILL: no cleanup) once its checkpoint.bin is there;
# a run that got to the end first is tried again (try 1..3).  Sets out, try,
# killed (0: every try finished first; 1: killed after a checkpoint; 2:
# ended without one) and nthreads (the process's threads before the kill).
kill_at_checkpoint() {
    prefix=$1
    shift
    killed=0
    for try in 1 2 3; do
        out=$prefix$try
        "$BENCH" "$@" --out "$out" >"$TMP/out" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null && [ ! -f "$out/runs/$(rid "$out")/checkpoint.bin" ]; do
            sleep 0.01
        done
        nthreads=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        if [ -f "$out/runs/$(rid "$out")/summary.csv" ]; then
            echo "    (try $try finished before the kill)"
            continue
        fi
        [ -f "$out/runs/$(rid "$out")/checkpoint.bin" ] && killed=1 || killed=2
        break
    done
}
