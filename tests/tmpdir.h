/* A temporary directory for a cmocka group (tests/test_data.c,
 * tests/test_harness_csv.c): made by the group setup under $TMPDIR (or
 * /tmp), removed with everything in it by the teardown. */
#ifndef AMO_TESTS_TMPDIR_H
#define AMO_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char g_dir[128]; /* $TMPDIR/amo-TAG-XXXXXX */

/* tag names the directory: "$TMPDIR/amo-TAG-XXXXXX". */
static inline int tmpdir_make(const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/amo-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    return mkdtemp(g_dir) ? 0 : -1;
}

static inline int tmpdir_remove(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
