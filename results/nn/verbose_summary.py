#!/usr/bin/env python3
"""Per-primitive and per-convolution-shape time of oneDNN's verbose log
(ONEDNN_VERBOSE=1 / DNNL_VERBOSE=1 output of amo-bench or a PyTorch anchor).

    verbose_summary.py LOG CALLS_PER_RUN_DIVISOR

Times are summed over every 'exec' line and divided by the divisor (the
number of steps the log holds, warm-up included), so they read as ms per
step.  Prints the primitive kinds, then every convolution (pass, shape,
layouts) with its GFLOP/s."""
import collections
import re
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, steps = sys.argv[1], int(sys.argv[2])
    kinds = collections.defaultdict(lambda: [0, 0.0])
    convs = collections.defaultdict(lambda: [0, 0.0])
    mms = collections.defaultdict(lambda: [0, 0.0])
    total = 0.0
    for line in open(path, errors="replace"):
        if not (line.startswith("onednn_verbose,exec") or line.startswith("dnnl_verbose,exec")):
            continue
        f = line.strip().split(",")
        t = float(f[-1])
        total += t
        kinds[(f[3], f[4], f[5])][0] += 1
        kinds[(f[3], f[4], f[5])][1] += t
        if f[3] == "convolution":
            convs[(f[5], f[4], f[-2])][0] += 1
            convs[(f[5], f[4], f[-2])][1] += t
        elif f[3] == "matmul":
            mms[(f[4], f[-2])][0] += 1
            mms[(f[4], f[-2])][1] += t
    print(f"oneDNN time per step: {total / steps:.1f} ms ({steps} steps in the log)")
    print("\nms/step  share  calls/step  primitive")
    for (kind, impl, prop), (n, t) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        print(f"{t / steps:7.1f} {100 * t / total:5.1f}% {n / steps:6.1f}      {kind} {impl} {prop}")
    print("\nms/call  calls/step  GFLOP/s  convolution")
    all_flops = all_ms = 0.0
    for (prop, impl, shape), (n, t) in sorted(convs.items(), key=lambda kv: -kv[1][1]):
        d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", shape)}
        flops = 2 * d["mb"] * d["ic"] * d["oc"] * d["oh"] * d["ow"] * d["kh"] * d["kw"]
        all_flops += flops * n
        all_ms += t
        print(f"{t / n:7.2f} {n / steps:6.1f}   {flops * n / (t * 1e-3) * 1e-9:7.0f}  "
              f"{prop} {impl} {shape}")
    if all_ms:
        # as direct sums: Winograd's rate here is direct-equivalent
        print(f"all convolutions: {all_ms / steps:.1f} ms per step, "
              f"{all_flops / (all_ms * 1e-3) * 1e-9:.0f} GFLOP/s (flops of the direct sums)")
    if mms:
        print("\nms/call  calls/step  GFLOP/s  matmul (M x K : K x N)")
        for (impl, shape), (n, t) in sorted(mms.items(), key=lambda kv: -kv[1][1]):
            dims = [int(x) for x in re.findall(r"\d+", shape)[:4]]
            flops = 2 * dims[0] * dims[1] * dims[3] if len(dims) == 4 else 0
            print(f"{t / n:7.2f} {n / steps:6.1f}   {flops * n / (t * 1e-3) * 1e-9:7.0f}  "
                  f"{impl} {shape}")


if __name__ == "__main__":
    main()
