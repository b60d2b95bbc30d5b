#!/bin/sh
# The commit amo-bench is built from, for the metadata of its results:
# the 12-digit hash, with "-dirty" when a tracked source file differs from
# it.  Results and prose are not sources: a run that rewrites
# results/kernels/*.csv must not mark the next build dirty.  Run by
# vcs_tag (harness/meson.build) in the source tree; prints nothing and
# fails outside a git checkout, and meson then records "unknown".
set -e
h=$(git rev-parse --short=12 HEAD)
if ! git diff --quiet HEAD -- ':(top)' ':(top,exclude)results' ':(top,exclude,glob)**/*.md'; then
    h="$h-dirty"
fi
echo "$h"
