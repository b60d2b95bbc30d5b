#!/bin/sh
# Issue 20's verdict on one sitting of run_bf16.sh (the rule is in README.md,
# "Session 10: one ruled sitting of the benchmark").  For AMO and
# Adam on 1 and 2 threads: the median over the sitting's rounds of the
# per-round bf16 / fp32 ratio, its distribution-free interval (order
# statistics: the j-th smallest to the j-th largest, j the largest with
# P(Bin(n, 1/2) < j) <= 0.025, so coverage >= 95%), and the load guard: the
# sitting's median fp32 Gparam/s against the median over the reference
# folders' rounds (a loaded memory slows the fp32 kernel more and raises the
# ratio, so a sitting more than 5% slower is not counted).
#     sh results/kernels/bf16_verdict.sh SITTING REFERENCE...
set -eu
S=${1:?usage: bf16_verdict.sh SITTING REFERENCE...}
shift
[ "$#" -ge 1 ] || { echo "bf16_verdict.sh: no reference folder" >&2; exit 1; }
for d in "$S" "$@"; do
    [ -f "$d/rounds.txt" ] || { echo "bf16_verdict.sh: $d/rounds.txt: no such file" >&2; exit 1; }
done
# one line per after-round and thread count: folder threads amo amo_bf16 adam adam_bf16
rows() {
    for d in "$@"; do
        awk -v d="$d" '$1 ~ /^round[0-9]+$/ {
            t = $3; sub(":", "", t)
            split("", g)
            for (i = 4; i < NF; i++) g[$i] = $(i + 1)
            if (!(g["amo"] > 0 && g["amo_bf16"] > 0 && g["adam"] > 0 && g["adam_bf16"] > 0)) {
                printf "bf16_verdict.sh: %s/rounds.txt line %d: a kernel is missing\n", d, FNR > "/dev/stderr"
                exit 1
            }
            print d, t, g["amo"], g["amo_bf16"], g["adam"], g["adam_bf16"]
        }' "$d/rounds.txt"
    done
}
trap 'rm -f "${TMPDIR:-/tmp}/bf16_verdict.s.$$" "${TMPDIR:-/tmp}/bf16_verdict.r.$$"' EXIT
rows "$S" >"${TMPDIR:-/tmp}/bf16_verdict.s.$$"
rows "$@" >"${TMPDIR:-/tmp}/bf16_verdict.r.$$"
awk '
function med(a, n,    s) { s = sorted(a, n); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function sorted(a, n,    i, j, x) {
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n
}
# the largest j with P(Bin(n, 1/2) < j) <= 0.025 (0 when n is too small)
function rank(n,    j, c, p) {
    p = 0; c = 1
    for (j = 0; j <= n; j++) {
        if (p + c / 2 ^ n > 0.025) return j
        p += c / 2 ^ n; c = c * (n - j) / (j + 1)
    }
    return 0
}
part == "s" { n[$2]++; k = n[$2]
            ra[$2, k] = $4 / $3; rd[$2, k] = $6 / $5; fa[$2, k] = $3; fd[$2, k] = $5 }
part == "r" { m[$2]++; k = m[$2]; qa[$2, k] = $3; qd[$2, k] = $5 }
END {
    for (t = 1; t <= 2; t++)
        if (!n[t] || !m[t]) {
            printf "bf16_verdict.sh: threads %d: no rounds in the %s\n", t, n[t] ? "reference" : "sitting" > "/dev/stderr"
            exit 1
        }
    verdict = "met"
    for (t = 1; t <= 2; t++) {
        for (c = 1; c <= 2; c++) {
            name = c == 1 ? "AMO " : "Adam"
            for (k = 1; k <= n[t]; k++) { r[k] = c == 1 ? ra[t, k] : rd[t, k]; f[k] = c == 1 ? fa[t, k] : fd[t, k] }
            for (k = 1; k <= m[t]; k++) q[k] = c == 1 ? qa[t, k] : qd[t, k]
            mr = med(r, n[t]); j = rank(n[t])
            lo = j ? sprintf("%.3f", r[j]) : "-"; hi = j ? sprintf("%.3f", r[n[t] + 1 - j]) : "-"
            mf = med(f, n[t]); mq = med(q, m[t])
            cell = mr >= 1.30 ? "met" : "not met"
            load = mf < 0.95 * mq ? "loaded" : "ok"
            if (cell != "met" || load != "ok") verdict = "not met"
            printf "%s %d thread(s): bf16/fp32 median %.3f [%s, %s] over %d rounds: %s; fp32 median %.3f Gparam/s against reference %.3f (%d rounds): %s\n", \
                name, t, mr, lo, hi, n[t], cell, mf, mq, m[t], load
        }
    }
    print "verdict: " verdict
}' part=s "${TMPDIR:-/tmp}/bf16_verdict.s.$$" part=r "${TMPDIR:-/tmp}/bf16_verdict.r.$$"
