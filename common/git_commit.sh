#!/bin/sh
# The commit libamo (and amo-bench with it) is built from, for the metadata
# of results (common/version.h):
# the 12-digit hash, with "-dirty" when a tracked source file differs from
# it.  Results and prose are not sources: a run that rewrites
# results/kernels/*.csv must not mark the next build dirty.  Run by
# vcs_tag (common/meson.build) in the source tree.  Without git, or
# outside a checkout, it says so quietly instead of failing the build.
command -v git >/dev/null 2>&1 || { echo "unknown (no git)"; exit 0; }
h=$(git rev-parse --short=12 HEAD 2>/dev/null) || { echo "unknown (not a git checkout)"; exit 0; }
if ! git diff --quiet HEAD -- ':(top)' ':(top,exclude)results' ':(top,exclude,glob)**/*.md'; then
    h="$h-dirty"
fi
echo "$h"
