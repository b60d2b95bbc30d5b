/* What libamo is and which commit it was built from: for the metadata a
 * program keeps beside its results (amo-bench writes both into every run's
 * files), so a figure can be traced to the code that produced it. */
#ifndef AMO_COMMON_VERSION_H
#define AMO_COMMON_VERSION_H

#include "common/api.h"

/* The project version (meson.build's). */
AMO_API const char *amo_version(void);

/* The commit the library was built from: 12 hex digits, with "-dirty" when a
 * tracked source file differed from it (results/ and *.md are not sources);
 * "unknown (no git)" or "unknown (not a git checkout)" when that could not be
 * asked, "unknown" if the script failed (common/git_commit.sh). */
AMO_API const char *amo_build_commit(void);

#endif
