#!/bin/sh
# The loader benchmark of results/imagenet/README.md:
#     results/imagenet/run.sh [BUILD] [TREE]
# writes a tree of 3000 ImageNet-sized JPEGs (10 classes x 300; mktree
# imagenet) unless TREE exists, reads it once into the page cache, then
# times 1000 training images through `amo-bench loader` at 0, 1 and 2
# threads (reduced-scale and full decoding) and through torchvision's
# ImageFolder + DataLoader at 0, 1 and 2 workers (Debian's python3 with
# python3-torchvision).  CSVs into this directory; the load average beside.
set -eu
BUILD=${1:-build}
TREE=${2:-/tmp/amo-imagenet-bench}
HERE=$(dirname "$0")
[ -d "$TREE" ] || "$BUILD/tests/harness/mktree" "$TREE" 10 300 0 imagenet 1
find "$TREE" -type f -exec cat {} + >/dev/null
IMAGES=${IMAGES:-1000}
out=$HERE/loader.csv
echo "split,loader_threads,batch,image_size,reduced_decode,images,seconds,images_per_s,images_per_s_per_thread,load_avg" >"$out"
for t in 0 1 2; do
    for full in "" --full-decode; do
        row=$("$BUILD/harness/amo-bench" loader --data "$TREE" --loader-threads $t --images "$IMAGES" $full | tail -n 1)
        echo "$row,$(cut -d' ' -f1 /proc/loadavg)" >>"$out"
    done
done
out=$HERE/torchvision.csv
echo "workers,images,seconds,images_per_s,images_per_s_per_worker,load_avg" >"$out"
for w in 0 1 2; do
    row=$(/usr/bin/python3 "$HERE/torchvision_loader.py" "$TREE" $w "$IMAGES" | tail -n 1)
    echo "$row,$(cut -d' ' -f1 /proc/loadavg)" >>"$out"
done
cat "$HERE/loader.csv" "$HERE/torchvision.csv"
