#!/bin/sh
# libamo.so exports its public API (the AMO_API declarations, prefixed
# amo_, kn_, opt_, nn_) and nothing else: no dispatch internals, no layers.
#     sh tests/test_exports.sh path/to/libamo.so
set -u
lib=${1:?usage: test_exports.sh LIBAMO}
names=$(nm -D --defined-only "$lib" | awk '{print $3}')
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); echo "ok: $1"; else fail=$((fail + 1)); echo "FAIL: $1"; fi; }
check 'exports some API' '[ -n "$names" ] && echo "$names" | grep -qx opt_create'
other=$(echo "$names" | grep -vE '^(amo|kn|opt|nn)_' | head -5)
check "only amo_/kn_/opt_/nn_ names (others: $other)" '[ -z "$other" ]'
for internal in kn_update_dsp_init_c kn_update_dsp nn_conv nn_graph_init nn_isa_init; do
    check "$internal is not exported" '! echo "$names" | grep -qx "$internal"'
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
