/* common/: the hash against FNV's published test vectors, the random number
 * generator against splitmix64's reference outputs and against the
 * distributions it claims, and the file helpers' promises (an atomic write
 * replaces a file whole or not at all; reads refuse what could block). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../tmpdir.h"
#include "common/file.h"
#include "common/hash.h"
#include "common/rng.h"
#include "common/status.h"

/* FNV-1a test vectors from the reference code's test suite
 * (http://www.isthe.com/chongo/src/fnv/test_fnv.c). */
static void test_fnv1a_vectors(void **state)
{
    (void)state;
    assert_true(amo_fnv1a64("", 0) == 0xcbf29ce484222325ull);
    assert_true(amo_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(amo_fnv1a64("foobar", 6) == 0x85944171f73967e8ull);
    assert_true(amo_fnv1a32(AMO_FNV32_INIT, "", 0) == 0x811c9dc5u);
    assert_true(amo_fnv1a32(AMO_FNV32_INIT, "a", 1) == 0xe40c292cu);
    assert_true(amo_fnv1a32(AMO_FNV32_INIT, "foobar", 6) == 0xbf9cf968u);
    /* fed piece by piece, as the run id's suffix is */
    assert_true(amo_fnv1a32(amo_fnv1a32(AMO_FNV32_INIT, "foo", 3), "bar", 3) == 0xbf9cf968u);
}

/* splitmix64 from seed 0 (Vigna's splitmix64.c): the first three outputs;
 * amo_rng_at gives the same values without stepping. */
static void test_rng_reference(void **state)
{
    (void)state;
    const uint64_t want[3] = { 0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
                               0x06c45d188009454full };
    AmoRng r = amo_rng(0);
    for (int i = 0; i < 3; i++) {
        assert_true(amo_rng_u64(&r) == want[i]);
        assert_true(amo_rng_at(0, (uint64_t)i) == want[i]);
    }
}

/* amo_rng_below(n) stays in [0, n) and is uniform (chi-square over 10 cells,
 * 9 degrees of freedom: 40 is beyond its 0.99999 quantile, 39.3); the
 * normal has mean 0 and variance 1 within 6 standard errors. */
static void test_rng_distributions(void **state)
{
    (void)state;
    AmoRng r = amo_rng(12345);
    enum { N = 200000, K = 10 };
    long cnt[K] = { 0 };
    for (int i = 0; i < N; i++) {
        const uint64_t x = amo_rng_below(&r, K);
        assert_true(x < K);
        cnt[x]++;
    }
    double chi2 = 0;
    for (int k = 0; k < K; k++)
        chi2 += (cnt[k] - N / (double)K) * (cnt[k] - N / (double)K) / (N / (double)K);
    assert_true(chi2 < 40.0);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        const double z = amo_rng_normal(&r);
        s += z;
        s2 += z * z;
    }
    const double mean = s / N, var = s2 / N - mean * mean;
    assert_true(fabs(mean) < 6.0 / sqrt(N));
    assert_true(fabs(var - 1.0) < 6.0 * sqrt(2.0 / N));
    for (int i = 0; i < 1000; i++) {
        const double u = amo_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

static int group_setup(void **state)
{
    (void)state;
    return tmpdir_make("common");
}

static int group_teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

static int count_entries(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

/* A write replaces the file whole, an aborted one leaves it as it was, and
 * neither leaves its temporary behind. */
static void test_atomic_write(void **state)
{
    (void)state;
    char dir[200], path[256], err[512];
    snprintf(dir, sizeof dir, "%s/atomic", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/f.txt", dir);
    assert_int_equal(amo_write_atomic(path, "first", 5, err, sizeof err), AMO_OK);
    assert_int_equal(amo_write_atomic(path, "second!", 7, err, sizeof err), AMO_OK);
    unsigned char *data;
    size_t len;
    assert_int_equal(amo_read_file(path, &data, &len, err, sizeof err), AMO_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "second!", 7);
    free(data);

    AmoFile *f;
    assert_int_equal(amo_file_create(&f, path, err, sizeof err), AMO_OK);
    fputs("half a file", amo_file_stream(f));
    assert_int_equal(count_entries(dir), 2); /* f.txt and the temporary */
    amo_file_abort(f);
    assert_int_equal(amo_read_file(path, &data, &len, err, sizeof err), AMO_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "second!", 7);
    free(data);
    assert_int_equal(count_entries(dir), 1);

    /* a directory that is not there: an error naming the path, nothing made */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no-such-dir/f.txt", dir);
    err[0] = '\0';
    assert_int_not_equal(amo_write_atomic(bad, "x", 1, err, sizeof err), AMO_OK);
    assert_non_null(strstr(err, "no-such-dir"));
    assert_int_equal(count_entries(dir), 1);
}

/* Reads refuse a FIFO and a directory at once (no blocking), and say so;
 * a missing file is AMO_EIO with errno ENOENT. */
static void test_read_refusals(void **state)
{
    (void)state;
    char fifo[256], err[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", g_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    unsigned char *data = NULL;
    size_t len = 0;
    alarm(5); /* a blocking open would hang here: SIGALRM fails the test */
    assert_int_not_equal(amo_read_file(fifo, &data, &len, err, sizeof err), AMO_OK);
    alarm(0);
    assert_non_null(strstr(err, "FIFO"));
    assert_int_not_equal(amo_read_file(g_dir, &data, &len, err, sizeof err), AMO_OK);
    assert_non_null(strstr(err, "directory"));
    char missing[256];
    snprintf(missing, sizeof missing, "%s/missing", g_dir);
    errno = 0;
    assert_int_equal(amo_read_file(missing, &data, &len, err, sizeof err), AMO_EIO);
    assert_int_equal(errno, ENOENT);
    size_t size = 0;
    assert_int_not_equal(amo_file_size(fifo, &size, err, sizeof err), AMO_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_vectors),
        cmocka_unit_test(test_rng_reference),
        cmocka_unit_test(test_rng_distributions),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_read_refusals),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
