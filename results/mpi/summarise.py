"""Images/s, compute time per image, gradient sums per step and the share
hidden behind backward, from two `amo-bench train` output directories
(results/mpi/run.sh).  Steady state: steps after the first 3."""
import csv, glob, json, statistics, sys

for out in sys.argv[1:]:
    run = glob.glob(out + "/runs/*/")[0]
    meta = json.load(open(run + "metadata.json"))
    rows = list(csv.DictReader(open(run + "steps.csv")))[3:]
    med = lambda k: statistics.median(float(r[k]) for r in rows)
    step_ms = med("data_ms") + med("forward_ms") + med("backward_ms") + med("comm_ms") \
        + med("optimizer_ms")
    ranks, batch = meta["ranks"], 128
    compute = (med("forward_ms") + med("backward_ms")) / (batch / ranks)
    alone = meta["grad_sums_alone_ms"]
    hidden = 1 - med("comm_ms") / alone if ranks > 1 and alone > 0 else float("nan")
    print(f"{out}: {ranks} rank(s) x {meta['threads_per_rank']} thread(s), "
          f"{meta['parameters']} parameters ({4 * meta['parameters'] / 2**20:.1f} MiB summed "
          f"per step, buckets of {meta['grad_bucket_floats']} floats)")
    print(f"  median step {step_ms:.1f} ms -> {1e3 * batch / step_ms:.1f} images/s "
          f"(median images_per_s {med('images_per_s'):.1f}); forward {med('forward_ms'):.1f}, "
          f"backward {med('backward_ms'):.1f}, optimizer {med('optimizer_ms'):.1f} ms")
    print(f"  compute (forward + backward) per image per rank: {compute:.2f} ms")
    if ranks > 1:
        print(f"  gradient sums alone {alone:.1f} ms; left after backward (comm_ms) "
              f"{med('comm_ms'):.2f} ms median, {statistics.mean(float(r['comm_ms']) for r in rows):.2f} mean; "
              f"hidden {100 * hidden:.0f}%")
