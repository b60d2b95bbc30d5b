# Sourced by the harness test scripts (tests/test_harness_cli.sh,
# tests/test_train.sh) after they set BENCH: a temporary directory removed
# on exit, the check counters, and `expect`.  Each script ends with
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
