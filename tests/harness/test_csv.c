/* harness/csv.c: quoting, the atomic replace, that a failed or abandoned
 * writer leaves the destination as it was, and the reader. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/csv.h"

#include "tests/tmpdir.h"

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    const size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Files in g_dir, dot files (temporaries) included. */
static int count_files(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int setup(void **state)
{
    (void)state;
    return tmpdir_make("csv");
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

static void quoting_and_numbers(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "q.csv");
    const char *const hdr[] = { "a", "b,c", "d" };
    HxCsv *w;
    assert_int_equal(hx_csv_open(&w, p, hdr, 3), AMO_OK);
    hx_csv_str(w, "plain");
    hx_csv_str(w, "say \"hi\", twice");
    hx_csv_str(w, "two\nlines");
    assert_int_equal(hx_csv_end_row(w), AMO_OK);
    hx_csv_str(w, " padded");
    hx_csv_int(w, -42);
    hx_csv_num(w, NAN);
    assert_int_equal(hx_csv_end_row(w), AMO_OK);
    hx_csv_str(w, NULL);
    hx_csv_num(w, 0.25);
    hx_csv_num(w, 1e-7);
    assert_int_equal(hx_csv_end_row(w), AMO_OK);
    assert_null(slurp(p)); /* nothing at the destination before close */
    assert_int_equal(hx_csv_close(w), AMO_OK);
    assert_string_equal(slurp(p), "a,\"b,c\",d\n"
                                  "plain,\"say \"\"hi\"\", twice\",\"two\nlines\"\n"
                                  "\" padded\",-42,\n"
                                  ",0.25,1e-07\n");
    assert_int_equal(count_files(), 1);
    unlink(p);
}

static void replaces_atomically(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "r.csv");
    FILE *f = fopen(p, "w");
    fputs("old\n", f);
    fclose(f);
    const char *const hdr[] = { "x" };
    HxCsv *w;
    assert_int_equal(hx_csv_open(&w, p, hdr, 1), AMO_OK);
    hx_csv_int(w, 1);
    hx_csv_end_row(w);
    assert_string_equal(slurp(p), "old\n"); /* still the old file meanwhile */
    assert_int_equal(count_files(), 2);     /* old + the temporary */
    assert_int_equal(hx_csv_close(w), AMO_OK);
    assert_string_equal(slurp(p), "x\n1\n");
    assert_int_equal(count_files(), 1);
    unlink(p);
}

static void abort_and_bad_rows_leave_nothing(void **state)
{
    (void)state;
    char p[300];
    path_in(p, sizeof p, "a.csv");
    const char *const hdr[] = { "x", "y" };
    HxCsv *w;
    assert_int_equal(hx_csv_open(&w, p, hdr, 2), AMO_OK);
    hx_csv_int(w, 1);
    hx_csv_abort(w);
    assert_int_equal(count_files(), 0);

    assert_int_equal(hx_csv_open(&w, p, hdr, 2), AMO_OK);
    hx_csv_int(w, 1);
    assert_int_equal(hx_csv_end_row(w), AMO_EINVAL); /* one field short */
    hx_csv_int(w, 1);
    hx_csv_int(w, 2);
    hx_csv_end_row(w);
    assert_int_not_equal(hx_csv_close(w), AMO_OK);
    assert_int_equal(count_files(), 0);

    assert_int_equal(hx_csv_open(&w, p, hdr, 2), AMO_OK);
    hx_csv_int(w, 1); /* unfinished row at close */
    assert_int_equal(hx_csv_close(w), AMO_EINVAL);
    assert_int_equal(count_files(), 0);
}

static void open_fails_cleanly(void **state)
{
    (void)state;
    const char *const hdr[] = { "x" };
    HxCsv *w = (HxCsv *)(uintptr_t)1;
    assert_int_equal(hx_csv_open(&w, "/nonexistent-dir-amo/x.csv", hdr, 1), AMO_EIO);
    assert_null(w);
    assert_int_equal(hx_csv_open(&w, "", hdr, 1), AMO_EINVAL);
}

/* The reader gives back the writer's fields, with their offsets; a quote
 * out of place, one left open, or too many fields are refused where they
 * are. */
static void reads_back_what_it_writes(void **state)
{
    (void)state;
    static const char text[] = "a,\"b,c\",d\n"
                               "plain,\"say \"\"hi\"\", twice\",\"two\nlines\"\n"
                               "\" padded\",-42,\n"
                               ",0.25,1e-07";
    static const char *const want[4][3] = {
        { "a", "b,c", "d" }, { "plain", "say \"hi\", twice", "two\nlines" },
        { " padded", "-42", "" }, { "", "0.25", "1e-07" },
    };
    static const size_t at[4][3] = { { 0, 2, 8 }, { 10, 16, 36 }, { 48, 58, 62 }, { 63, 64, 69 } };
    HxCsvRecord rec;
    size_t off = 0;
    for (int r = 0; r < 4; r++) {
        assert_int_equal(hx_csv_record(text, sizeof text - 1, &off, &rec), AMO_OK);
        assert_int_equal(rec.n, 3);
        for (int i = 0; i < 3; i++) {
            assert_string_equal(rec.field[i], want[r][i]);
            assert_int_equal(rec.at[i], at[r][i]);
        }
    }
    assert_int_equal(off, sizeof text - 1);

    static const struct { const char *text; size_t off; } bad[] = {
        { "a\"b,c\n", 1 },     /* a quote inside an unquoted field */
        { "\"ab\"c,d\n", 4 },  /* text after the closing quote    */
        { "x,\"open", 7 },     /* a quote left open               */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        off = 0;
        assert_int_equal(hx_csv_record(bad[i].text, strlen(bad[i].text), &off, &rec),
                         AMO_EFORMAT);
        assert_int_equal(off, bad[i].off);
    }
    char many[2 * HX_CSV_MAX_FIELDS + 2];
    memset(many, ',', sizeof many - 1);
    many[sizeof many - 1] = '\0';
    off = 0;
    assert_int_equal(hx_csv_record(many, strlen(many), &off, &rec), AMO_EFORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quoting_and_numbers),
        cmocka_unit_test(replaces_atomically),
        cmocka_unit_test(abort_and_bad_rows_leave_nothing),
        cmocka_unit_test(open_fails_cleanly),
        cmocka_unit_test(reads_back_what_it_writes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
