/* nn/data.c on small files this test writes itself: IDX (gzip and raw) and
 * CIFAR-10 binary batches read back pixel for pixel, from files and from
 * memory; every kind of broken file refused with AMO_EFORMAT (AMO_EIO when
 * missing, or a FIFO, directory or device) and a message naming the file,
 * what failed and the byte offset (a gzip stream's own faults by compressed
 * offset: cut, CRC-32, length, deflate data, trailing bytes); the
 * stratified split; the batcher's epochs, resumable order, normalisation
 * and zero padding. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "nn/data.h"

#include "tests/tmpdir.h"

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static int setup(void **state)
{
    (void)state;
    return tmpdir_make("data");
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

/* ---- writing test files ---------------------------------------------------- */

static void write_raw(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile f = gzopen(path, "wb9");
    assert_non_null(f);
    if (n)
        assert_int_equal(gzwrite(f, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 16];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static unsigned char pixel(int i, int j) { return (unsigned char)(i * 31 + j * 7 + 3); }

/* An IDX image file of n rows x cols images into buf; returns its length. */
static size_t idx_images(unsigned char *buf, int n, int rows, int cols)
{
    put_be32(buf, 0x00000803);
    put_be32(buf + 4, (uint32_t)n);
    put_be32(buf + 8, (uint32_t)rows);
    put_be32(buf + 12, (uint32_t)cols);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < rows * cols; j++)
            buf[16 + (size_t)i * rows * cols + j] = pixel(i, j);
    return 16 + (size_t)n * rows * cols;
}

static unsigned char label(int i) { return (unsigned char)((i * 7 + 2) % 10); }

static size_t idx_labels(unsigned char *buf, int n)
{
    put_be32(buf, 0x00000801);
    put_be32(buf + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        buf[8 + i] = label(i);
    return 8 + (size_t)n;
}

/* ---- checking results ------------------------------------------------------ */

#define assert_has(err, what)                                                                \
    do {                                                                                     \
        if (!strstr((err), (what)))                                                          \
            fail_msg("message \"%s\" lacks \"%s\"", (err), (what));                          \
    } while (0)

static void check_idx(const NnDataset *d, int n, int rows, int cols)
{
    assert_int_equal(d->n, n);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, rows);
    assert_int_equal(d->w, cols);
    assert_int_equal(d->classes, 10);
    for (int i = 0; i < n; i++) {
        assert_int_equal(d->y[i], label(i));
        for (int j = 0; j < rows * cols; j++)
            assert_int_equal(d->x[(size_t)i * rows * cols + j], pixel(i, j));
    }
}

/* nn_data_idx refuses (img, lab) with want; the message names `file` and
 * holds `where` ("offset N"). */
static const char *idx_refused(const char *img, const char *lab, AmoStatus want,
                               const char *file, const char *where)
{
    NnDataset d;
    memset(&d, 0xab, sizeof d);
    static char err[1024];
    err[0] = '\0';
    const AmoStatus st = nn_data_idx(&d, img, lab, err, sizeof err);
    if (st != want)
        fail_msg("status %d, expected %d (message \"%s\")", st, want, err);
    assert_null(d.x); /* nothing half-loaded */
    assert_null(d.y);
    assert_has(err, file);
    assert_has(err, where);
    return err;
}

#define assert_lacks(err, what)                                                              \
    do {                                                                                     \
        if (strstr((err), (what)))                                                           \
            fail_msg("message \"%s\" has \"%s\"", (err), (what));                            \
    } while (0)

#define N 3
#define R 4
#define C 5
#define IMG_LEN (16 + N * R * C)
#define LAB_LEN (8 + N)

/* The good pair at img/lab (raw or gzip), and the paths of each. */
static void good_pair(char *img, char *lab, size_t len, const char *tag, int gz)
{
    unsigned char bi[IMG_LEN], bl[LAB_LEN];
    idx_images(bi, N, R, C);
    idx_labels(bl, N);
    char name[64];
    snprintf(name, sizeof name, "%s-images%s", tag, gz ? ".gz" : "");
    path_in(img, len, name);
    snprintf(name, sizeof name, "%s-labels%s", tag, gz ? ".gz" : "");
    path_in(lab, len, name);
    (gz ? write_gz : write_raw)(img, bi, sizeof bi);
    (gz ? write_gz : write_raw)(lab, bl, sizeof bl);
}

/* ---- IDX --------------------------------------------------------------------- */

static void idx_reads_gzip_and_raw(void **state)
{
    (void)state;
    char img[300], lab[300];
    for (int gz = 0; gz < 2; gz++) {
        good_pair(img, lab, sizeof img, gz ? "gz" : "raw", gz);
        NnDataset d;
        char err[1024] = "";
        if (nn_data_idx(&d, img, lab, err, sizeof err) != AMO_OK)
            fail_msg("%s", err);
        check_idx(&d, N, R, C);
        nn_data_free(&d);
        assert_null(d.x);
    }
    /* one of each */
    char raw_img[300];
    path_in(raw_img, sizeof raw_img, "raw-images");
    NnDataset d;
    char err[1024] = "";
    assert_int_equal(nn_data_idx(&d, raw_img, lab, err, sizeof err), AMO_OK);
    check_idx(&d, N, R, C);
    nn_data_free(&d);
}

/* Cut inside the magic, inside the dimensions, inside the pixels, inside
 * the labels; raw and gzip (offsets in the decompressed stream). */
static void idx_truncated(void **state)
{
    (void)state;
    unsigned char bi[IMG_LEN], bl[LAB_LEN];
    idx_images(bi, N, R, C);
    idx_labels(bl, N);
    char img[300], lab[300], good_img[300], good_lab[300], where[64];
    good_pair(good_img, good_lab, sizeof good_img, "trunc-good", 0);
    const size_t cuts[] = { 0, 2, 6, 15, 16, 17, IMG_LEN - 1 };
    for (int gz = 0; gz < 2; gz++)
        for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
            path_in(img, sizeof img, gz ? "cut-images.gz" : "cut-images");
            (gz ? write_gz : write_raw)(img, bi, cuts[k]);
            snprintf(where, sizeof where, "offset %zu", cuts[k]);
            idx_refused(img, good_lab, AMO_EFORMAT, img, where);
        }
    const size_t lcuts[] = { 3, 7, 8, LAB_LEN - 1 };
    for (int gz = 0; gz < 2; gz++)
        for (size_t k = 0; k < sizeof lcuts / sizeof *lcuts; k++) {
            path_in(lab, sizeof lab, gz ? "cut-labels.gz" : "cut-labels");
            (gz ? write_gz : write_raw)(lab, bl, lcuts[k]);
            snprintf(where, sizeof where, "offset %zu", lcuts[k]);
            idx_refused(good_img, lab, AMO_EFORMAT, lab, where);
        }
    /* a .gz file cut inside its compressed stream */
    char gimg[300], glab[300];
    good_pair(gimg, glab, sizeof gimg, "cutgz", 1);
    size_t n;
    unsigned char *p = slurp(gimg, &n);
    path_in(img, sizeof img, "cutgz-short.gz");
    write_raw(img, p, n - 12); /* the trailer and some of the data */
    idx_refused(img, glab, AMO_EFORMAT, img, "offset");
}

static void idx_bad_magic(void **state)
{
    (void)state;
    unsigned char bi[IMG_LEN], bl[LAB_LEN];
    char img[300], lab[300], good_img[300], good_lab[300];
    good_pair(good_img, good_lab, sizeof good_img, "magic-good", 0);
    idx_images(bi, N, R, C);
    idx_labels(bl, N);
    put_be32(bi, 0x00000801); /* a label file's magic */
    path_in(img, sizeof img, "magic-images");
    write_raw(img, bi, sizeof bi);
    idx_refused(img, good_lab, AMO_EFORMAT, img, "offset 0");
    put_be32(bi, 0x00000d03); /* float data */
    write_raw(img, bi, sizeof bi);
    idx_refused(img, good_lab, AMO_EFORMAT, img, "offset 0");
    /* the two swapped */
    idx_refused(good_lab, good_img, AMO_EFORMAT, good_lab, "offset 0");
    put_be32(bl, 0x08000001);
    path_in(lab, sizeof lab, "magic-labels.gz");
    write_gz(lab, bl, sizeof bl);
    idx_refused(good_img, lab, AMO_EFORMAT, lab, "offset 0");
}

static void idx_label_out_of_range(void **state)
{
    (void)state;
    unsigned char bl[LAB_LEN];
    char img[300], lab[300];
    good_pair(img, lab, sizeof img, "range", 0);
    idx_labels(bl, N);
    bl[8 + 2] = 10;
    path_in(lab, sizeof lab, "range-labels-bad.gz");
    write_gz(lab, bl, sizeof bl);
    idx_refused(img, lab, AMO_EFORMAT, lab, "offset 10");
    bl[8 + 2] = label(2);
    bl[8 + 0] = 255;
    write_gz(lab, bl, sizeof bl);
    idx_refused(img, lab, AMO_EFORMAT, lab, "offset 8");
}

static void idx_count_mismatch(void **state)
{
    (void)state;
    unsigned char bi[16 + (N + 1) * R * C], bl[8 + N + 1];
    char img[300], lab[300], good_img[300], good_lab[300];
    good_pair(good_img, good_lab, sizeof good_img, "count-good", 1);
    path_in(img, sizeof img, "count-images.gz");
    write_gz(img, bi, idx_images(bi, N + 1, R, C));
    idx_refused(img, good_lab, AMO_EFORMAT, img, "offset 4");
    idx_refused(img, good_lab, AMO_EFORMAT, good_lab, "offset 4");
    path_in(lab, sizeof lab, "count-labels");
    write_raw(lab, bl, idx_labels(bl, N + 1));
    idx_refused(good_img, lab, AMO_EFORMAT, lab, "offset 4");
    /* zero images and zero labels agree, but are not a data set */
    path_in(img, sizeof img, "zero-images");
    write_raw(img, bi, idx_images(bi, 0, R, C));
    path_in(lab, sizeof lab, "zero-labels");
    write_raw(lab, bl, idx_labels(bl, 0));
    idx_refused(img, lab, AMO_EFORMAT, img, "offset 4");
}

static void idx_trailing_garbage(void **state)
{
    (void)state;
    unsigned char bi[IMG_LEN + 5], bl[LAB_LEN + 1];
    char img[300], lab[300], good_img[300], good_lab[300], where[64];
    good_pair(good_img, good_lab, sizeof good_img, "trail-good", 0);
    idx_images(bi, N, R, C);
    memset(bi + IMG_LEN, 0, 5);
    idx_labels(bl, N);
    bl[LAB_LEN] = 1;
    for (int gz = 0; gz < 2; gz++) {
        path_in(img, sizeof img, gz ? "trail-images.gz" : "trail-images");
        (gz ? write_gz : write_raw)(img, bi, sizeof bi);
        snprintf(where, sizeof where, "offset %d", IMG_LEN);
        idx_refused(img, good_lab, AMO_EFORMAT, img, where);
        path_in(lab, sizeof lab, gz ? "trail-labels.gz" : "trail-labels");
        (gz ? write_gz : write_raw)(lab, bl, sizeof bl);
        snprintf(where, sizeof where, "offset %d", LAB_LEN);
        idx_refused(good_img, lab, AMO_EFORMAT, lab, where);
    }
}

/* A flipped byte in the compressed data, in the CRC, in the length. */
static void idx_corrupted_gzip(void **state)
{
    (void)state;
    enum { BN = 16, BR = 12, BC = 12 };
    static unsigned char bi[16 + BN * BR * BC];
    unsigned char bl[8 + BN];
    char img[300], lab[300], bad[300];
    path_in(img, sizeof img, "gzc-images.gz");
    path_in(lab, sizeof lab, "gzc-labels.gz");
    write_gz(img, bi, idx_images(bi, BN, BR, BC));
    write_gz(lab, bl, idx_labels(bl, BN));
    NnDataset d;
    char err[1024] = "";
    assert_int_equal(nn_data_idx(&d, img, lab, err, sizeof err), AMO_OK);
    nn_data_free(&d);
    size_t n;
    unsigned char *p = slurp(img, &n);
    static unsigned char copy[1 << 16];
    path_in(bad, sizeof bad, "gzc-bad-images.gz");
    /* 10-byte header, deflate data, CRC-32, ISIZE */
    const size_t at[] = { 10, 10 + (n - 18) / 2, n - 19, n - 8, n - 5, n - 1 };
    for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
        memcpy(copy, p, n);
        copy[at[k]] ^= 0x5a;
        write_raw(bad, copy, n);
        idx_refused(bad, lab, AMO_EFORMAT, bad, "offset");
    }
    /* a broken second gzip member after a complete first one (zlib reports
     * it only when reading past the payload) */
    char second[300];
    path_in(second, sizeof second, "gzc-second.gz");
    write_gz(second, "more pixels, more pixels", 24);
    p = slurp(img, &n);
    memcpy(copy, p, n);
    size_t m;
    p = slurp(second, &m); /* (the same buffer) */
    memcpy(copy + n, p, m);
    copy[n + 12] ^= 0x55;
    write_raw(bad, copy, n + m);
    char where[64];
    snprintf(where, sizeof where, "offset %zu", sizeof bi);
    idx_refused(bad, lab, AMO_EFORMAT, bad, where);
}

static void idx_missing(void **state)
{
    (void)state;
    char img[300], lab[300], none[300];
    good_pair(img, lab, sizeof img, "missing", 0);
    path_in(none, sizeof none, "no-such-file");
    idx_refused(none, lab, AMO_EIO, none, "no-such-file");
    idx_refused(img, none, AMO_EIO, none, "no-such-file");
}

/* ---- gzip integrity: each case here once loaded, hung or was misreported --------- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The file at path as written (a copy: slurp's buffer is shared). */
static size_t copy_of(unsigned char *dst, const char *path)
{
    size_t n;
    const unsigned char *p = slurp(path, &n);
    memcpy(dst, p, n);
    return n;
}

/* A good gzip pair tagged tag; returns a copy of the images file's n bytes
 * (one buffer, shared by the callers) to be broken. */
static unsigned char *gz_pair_bytes(char *img, char *lab, size_t len, const char *tag, size_t *n)
{
    static unsigned char f[1 << 16];
    good_pair(img, lab, len, tag, 1);
    *n = copy_of(f, img);
    return f;
}

/* Cut right before the 8-byte CRC-32 + length trailer and inside it: the
 * deflate data are complete, so only a missing trailer tells. */
static void idx_gzip_cut_in_trailer(void **state)
{
    (void)state;
    char img[300], lab[300], cut[300], where[64];
    size_t n;
    unsigned char *f = gz_pair_bytes(img, lab, sizeof img, "trailer", &n);
    path_in(cut, sizeof cut, "trailer-cut.gz");
    for (size_t keep = 0; keep < 8; keep++) {
        write_raw(cut, f, n - 8 + keep);
        snprintf(where, sizeof where, "compressed offset %zu", n - 8 + keep);
        const char *err = idx_refused(cut, lab, AMO_EFORMAT, cut, where);
        assert_has(err, "truncated");
        assert_has(err, "trailer");
    }
    /* the labels too */
    const size_t m = copy_of(f, lab);
    path_in(cut, sizeof cut, "trailer-cut-labels.gz");
    write_raw(cut, f, m - 8);
    snprintf(where, sizeof where, "compressed offset %zu", m - 8);
    assert_has(idx_refused(img, cut, AMO_EFORMAT, cut, where), "trailer");
}

/* Level 0 stores the pixels raw: a flipped pixel byte decodes fine and only
 * the CRC-32 catches it; a flipped length byte only ISIZE. */
static void idx_gzip_stored_flip(void **state)
{
    (void)state;
    enum { SN = 40, SR = 16, SC = 16, LEN = 16 + SN * SR * SC };
    static unsigned char bi[LEN], f[1 << 16];
    unsigned char bl[8 + SN];
    char img[300], lab[300], want[96];
    path_in(img, sizeof img, "stored-images.gz");
    path_in(lab, sizeof lab, "stored-labels.gz");
    idx_images(bi, SN, SR, SC);
    write_raw(lab, bl, idx_labels(bl, SN));
    gzFile g = gzopen(img, "wb0");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, bi, LEN), LEN);
    assert_int_equal(gzclose(g), Z_OK);
    const size_t n = copy_of(f, img);
    /* pixel 100 of image 0, found through the IDX header stored before it */
    size_t at = 0;
    while (at + 16 <= n && memcmp(f + at, bi, 16))
        at++;
    assert_true(at + 16 < n);
    at += 16 + 100;
    assert_int_equal(f[at], bi[16 + 100]);
    f[at] ^= 0x01;
    bi[16 + 100] ^= 0x01;
    path_in(img, sizeof img, "stored-flipped.gz");
    write_raw(img, f, n);
    const char *err = idx_refused(img, lab, AMO_EFORMAT, img, "CRC-32 mismatch");
    snprintf(want, sizeof want, "%08x", (unsigned)le32(f + n - 8)); /* the trailer's */
    assert_has(err, want);
    snprintf(want, sizeof want, "%08x", (unsigned)crc32(0, bi, LEN)); /* the data's */
    assert_has(err, want);
    snprintf(want, sizeof want, "compressed offset %zu", n - 8);
    assert_has(err, want);
    /* the length: one more byte than there is */
    f[at] ^= 0x01;
    f[n - 4] ^= 0x01;
    write_raw(img, f, n);
    err = idx_refused(img, lab, AMO_EFORMAT, img, "length mismatch");
    snprintf(want, sizeof want, "%u", (unsigned)LEN ^ 1u);
    assert_has(err, want);
    snprintf(want, sizeof want, "%u", (unsigned)LEN);
    assert_has(err, want);
}

/* Bytes after the gzip stream that are not a gzip member are refused;
 * further members are gzip (gunzip reads them) and are read. */
static void idx_gzip_trailing_data(void **state)
{
    (void)state;
    char img[300], lab[300], bad[300], where[64];
    size_t n;
    unsigned char *f = gz_pair_bytes(img, lab, sizeof img, "after", &n);
    path_in(bad, sizeof bad, "after-images.gz");
    static const struct { const char *bytes; size_t len; } junk[] = {
        { "garbage", 7 }, { "\0\0\0\0\0\0\0\0\0\0\0\0", 12 }, { "\x1f", 1 }, { "\x1f\x8b", 2 },
    };
    for (size_t k = 0; k < sizeof junk / sizeof *junk; k++) {
        memcpy(f + n, junk[k].bytes, junk[k].len);
        write_raw(bad, f, n + junk[k].len);
        snprintf(where, sizeof where, "compressed offset %zu", n);
        idx_refused(bad, lab, AMO_EFORMAT, bad, where);
    }
    /* the images in two members, then an empty third one */
    unsigned char bi[IMG_LEN];
    idx_images(bi, N, R, C);
    char part[300];
    path_in(part, sizeof part, "after-part.gz");
    write_gz(part, bi, 20);
    size_t m = copy_of(f, part);
    write_gz(part, bi + 20, IMG_LEN - 20);
    m += copy_of(f + m, part);
    write_gz(part, NULL, 0);
    m += copy_of(f + m, part);
    write_raw(bad, f, m);
    NnDataset d;
    char err[1024] = "";
    if (nn_data_idx(&d, bad, lab, err, sizeof err) != AMO_OK)
        fail_msg("%s", err);
    check_idx(&d, N, R, C);
    nn_data_free(&d);
}

/* Corrupt deflate data are named so, with zlib's reason and the compressed
 * offset, not "truncated". */
static void idx_gzip_corrupt_deflate(void **state)
{
    (void)state;
    char img[300], lab[300], bad[300];
    size_t n;
    unsigned char *f = gz_pair_bytes(img, lab, sizeof img, "deflate", &n);
    f[10] |= 0x06; /* block type 3: reserved */
    path_in(bad, sizeof bad, "deflate-bad.gz");
    write_raw(bad, f, n);
    const char *err = idx_refused(bad, lab, AMO_EFORMAT, bad, "corrupt deflate data");
    assert_has(err, "invalid block type");
    assert_has(err, "compressed offset 11");
    assert_lacks(err, "truncated");
}

static sigjmp_buf g_hung;
static void on_alarm(int sig)
{
    (void)sig;
    siglongjmp(g_hung, 1);
}

/* nn_data_idx on path, given up after 5 s (an open FIFO without a writer
 * blocks: gzopen hung there for good). */
static AmoStatus idx_within_5s(const char *img, const char *lab, char *err, size_t len)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    NnDataset d;
    volatile AmoStatus st = AMO_OK;
    volatile int hung = 0;
    if (sigsetjmp(g_hung, 1) == 0) {
        alarm(5);
        st = nn_data_idx(&d, img, lab, err, len);
        alarm(0);
    } else {
        hung = 1;
    }
    sigaction(SIGALRM, &old, NULL);
    if (hung)
        fail_msg("nn_data_idx(%s, %s) still blocked after 5 s", img, lab);
    if (st == AMO_OK)
        nn_data_free(&d);
    return st;
}

/* A FIFO, a directory, a device given as a data file: refused up front as
 * what they are. */
static void idx_not_regular(void **state)
{
    (void)state;
    char img[300], lab[300], fifo[300], dir[300], err[1024] = "";
    good_pair(img, lab, sizeof img, "special", 1);
    path_in(fifo, sizeof fifo, "special-fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    for (int which = 0; which < 2; which++) {
        assert_int_equal(idx_within_5s(which ? img : fifo, which ? fifo : lab, err, sizeof err),
                         AMO_EIO);
        assert_has(err, fifo);
        assert_has(err, "not a regular file");
        assert_has(err, "FIFO");
    }
    path_in(dir, sizeof dir, "special-dir");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_has(idx_refused(dir, lab, AMO_EIO, dir, "not a regular file"), "directory");
    assert_has(idx_refused(img, "/dev/null", AMO_EIO, "/dev/null", "not a regular file"),
               "device");
}

/* Sizes out of range with counts that agree: said so, not "do not match". */
static void idx_size_limits(void **state)
{
    (void)state;
    static unsigned char bi[16 + 5000], bl[8 + 1];
    char img[300], lab[300];
    path_in(img, sizeof img, "limit-images");
    path_in(lab, sizeof lab, "limit-labels");
    write_raw(lab, bl, idx_labels(bl, 1));
    write_raw(img, bi, idx_images(bi, 1, 5000, 1));
    const char *err = idx_refused(img, lab, AMO_EFORMAT, img, "5000 x 1");
    assert_has(err, "4096");
    assert_has(err, "offset 8");
    assert_lacks(err, "do not match");
    write_raw(img, bi, idx_images(bi, 1, 1, 0));
    assert_lacks(idx_refused(img, lab, AMO_EFORMAT, img, "1 x 0"), "do not match");
    /* 2^26 + 1 of each: the headers alone, the limit is checked first */
    put_be32(bi + 4, (1u << 26) + 1);
    put_be32(bi + 8, 1);
    put_be32(bi + 12, 1);
    write_raw(img, bi, 16);
    put_be32(bl + 4, (1u << 26) + 1);
    write_raw(lab, bl, 8);
    err = idx_refused(img, lab, AMO_EFORMAT, img, "67108865 images");
    assert_has(err, "67108864");
    assert_lacks(err, "do not match");
    /* zero images and zero labels */
    write_raw(img, bi, idx_images(bi, 0, R, C));
    write_raw(lab, bl, idx_labels(bl, 0));
    err = idx_refused(img, lab, AMO_EFORMAT, img, "0 images");
    assert_lacks(err, "do not match");
    /* counts that differ still do not match */
    write_raw(img, bi, idx_images(bi, 2, R, C));
    write_raw(lab, bl, idx_labels(bl, 1));
    assert_has(idx_refused(img, lab, AMO_EFORMAT, lab, "offset 4"), "do not match");
}

/* ---- Fashion-MNIST / MNIST directory ------------------------------------------------ */

static void mnist_dir(void **state)
{
    (void)state;
    char dir[300], p[400], err[1024] = "";
    NnDataset tr, te;
    path_in(dir, sizeof dir, "no-fashion-here");
    assert_int_equal(nn_data_mnist(&tr, &te, dir, err, sizeof err), AMO_EIO);
    assert_has(err, dir);
    assert_has(err, "dataset-fashion-mnist");

    path_in(dir, sizeof dir, "fashion");
    assert_int_equal(mkdir(dir, 0777), 0);
    unsigned char bi[16 + 5 * R * C], bl[8 + 5];
    /* train gzip, test raw: each file is looked up as .gz first */
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_gz(p, bi, idx_images(bi, 5, R, C));
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_gz(p, bl, idx_labels(bl, 5));
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_raw(p, bi, idx_images(bi, 2, R, C));
    err[0] = '\0';
    memset(&tr, 0xab, sizeof tr);
    assert_int_equal(nn_data_mnist(&tr, &te, dir, err, sizeof err), AMO_EIO);
    assert_has(err, "t10k-labels-idx1-ubyte");
    assert_null(tr.x); /* the training set is not left behind */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_raw(p, bl, idx_labels(bl, 2));
    if (nn_data_mnist(&tr, &te, dir, err, sizeof err) != AMO_OK)
        fail_msg("%s", err);
    check_idx(&tr, 5, R, C);
    check_idx(&te, 2, R, C);
    nn_data_free(&tr);
    nn_data_free(&te);
}

/* ---- CIFAR-10 ------------------------------------------------------------------- */

#define REC 3073
static const char *const cifar_names[] = { "data_batch_1.bin", "data_batch_2.bin",
                                           "data_batch_3.bin", "data_batch_4.bin",
                                           "data_batch_5.bin", "test_batch.bin" };
static const int cifar_recs[] = { 1, 2, 1, 1, 2, 2 };

static unsigned char cifar_label(int f, int r) { return (unsigned char)((f * 3 + r) % 10); }
static unsigned char cifar_pixel(int f, int r, int k) { return (unsigned char)(k + f * 11 + r * 5); }

/* A good CIFAR directory `name`; returns its path in dir. */
static void cifar_dir(char *dir, size_t len, const char *name)
{
    path_in(dir, len, name);
    assert_int_equal(mkdir(dir, 0777), 0);
    static unsigned char buf[3 * REC];
    for (int f = 0; f < 6; f++) {
        for (int r = 0; r < cifar_recs[f]; r++) {
            buf[(size_t)r * REC] = cifar_label(f, r);
            for (int k = 0; k < 3072; k++)
                buf[(size_t)r * REC + 1 + k] = cifar_pixel(f, r, k);
        }
        char p[400];
        snprintf(p, sizeof p, "%s/%s", dir, cifar_names[f]);
        write_raw(p, buf, (size_t)cifar_recs[f] * REC);
    }
}

static void cifar_reads(void **state)
{
    (void)state;
    char dir[300], err[1024] = "";
    cifar_dir(dir, sizeof dir, "cifar-ok");
    NnDataset tr, te;
    if (nn_data_cifar10(&tr, &te, dir, err, sizeof err) != AMO_OK)
        fail_msg("%s", err);
    assert_int_equal(tr.n, 7);
    assert_int_equal(te.n, 2);
    const NnDataset *sets[] = { &tr, &te };
    for (int s = 0; s < 2; s++) {
        assert_int_equal(sets[s]->c, 3);
        assert_int_equal(sets[s]->h, 32);
        assert_int_equal(sets[s]->w, 32);
        assert_int_equal(sets[s]->classes, 10);
    }
    int i = 0;
    for (int f = 0; f < 6; f++) {
        if (f == 5)
            i = 0;
        const NnDataset *d = f == 5 ? &te : &tr;
        for (int r = 0; r < cifar_recs[f]; r++, i++) {
            assert_int_equal(d->y[i], cifar_label(f, r));
            for (int k = 0; k < 3072; k++)
                assert_int_equal(d->x[(size_t)i * 3072 + k], cifar_pixel(f, r, k));
        }
    }
    nn_data_free(&tr);
    nn_data_free(&te);
}

static void cifar_refused(const char *dir, AmoStatus want, const char *file, const char *where)
{
    NnDataset tr, te;
    memset(&tr, 0xab, sizeof tr);
    memset(&te, 0xab, sizeof te);
    char err[1024] = "";
    const AmoStatus st = nn_data_cifar10(&tr, &te, dir, err, sizeof err);
    if (st != want)
        fail_msg("status %d, expected %d (message \"%s\")", st, want, err);
    assert_null(tr.x);
    assert_has(err, file);
    assert_has(err, where);
}

static void cifar_broken(void **state)
{
    (void)state;
    char dir[300], p[400];
    size_t n;
    static unsigned char copy[4 * REC];

    /* cut inside the first record, inside the second, and an empty file */
    cifar_dir(dir, sizeof dir, "cifar-cut");
    snprintf(p, sizeof p, "%s/data_batch_2.bin", dir);
    const unsigned char *orig = slurp(p, &n);
    memcpy(copy, orig, n);
    write_raw(p, copy, REC + 100);
    cifar_refused(dir, AMO_EFORMAT, p, "offset 3073");
    write_raw(p, copy, 1);
    cifar_refused(dir, AMO_EFORMAT, p, "offset 0");
    write_raw(p, copy, 0);
    cifar_refused(dir, AMO_EFORMAT, p, "offset 0");
    /* an extra partial record: trailing garbage */
    write_raw(p, copy, 2 * REC + 7);
    cifar_refused(dir, AMO_EFORMAT, p, "offset 6146");

    /* a label out of range in the second record of the test batch */
    cifar_dir(dir, sizeof dir, "cifar-label");
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    orig = slurp(p, &n);
    memcpy(copy, orig, n);
    copy[REC] = 10;
    write_raw(p, copy, n);
    cifar_refused(dir, AMO_EFORMAT, p, "offset 3073");

    /* a missing batch */
    cifar_dir(dir, sizeof dir, "cifar-missing");
    snprintf(p, sizeof p, "%s/data_batch_4.bin", dir);
    assert_int_equal(remove(p), 0);
    cifar_refused(dir, AMO_EIO, p, "data_batch_4.bin");
    cifar_dir(dir, sizeof dir, "cifar-missing-test");
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    assert_int_equal(remove(p), 0);
    cifar_refused(dir, AMO_EIO, p, "test_batch.bin");
}

/* A directory and a FIFO where a batch should be. */
static void cifar_not_regular(void **state)
{
    (void)state;
    char dir[300], p[400];
    cifar_dir(dir, sizeof dir, "cifar-special");
    snprintf(p, sizeof p, "%s/data_batch_3.bin", dir);
    assert_int_equal(remove(p), 0);
    assert_int_equal(mkdir(p, 0700), 0);
    cifar_refused(dir, AMO_EIO, p, "not a regular file");
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(mkfifo(p, 0600), 0);
    cifar_refused(dir, AMO_EIO, p, "not a regular file");
}

/* ---- from memory -------------------------------------------------------------- */

/* The entry points a fuzzer calls: the same bytes read the same way, the
 * buffers named as told. */
static void idx_from_memory(void **state)
{
    (void)state;
    unsigned char bi[IMG_LEN], bl[LAB_LEN];
    idx_images(bi, N, R, C);
    idx_labels(bl, N);
    NnDataset d;
    char err[1024] = "", img[300], lab[300];
    assert_int_equal(nn_data_idx_mem(&d, "img", bi, sizeof bi, "lab", bl, sizeof bl, err,
                                     sizeof err),
                     AMO_OK);
    check_idx(&d, N, R, C);
    nn_data_free(&d);
    size_t ni;
    const unsigned char *gi = gz_pair_bytes(img, lab, sizeof img, "mem", &ni);
    if (nn_data_idx_mem(&d, "img.gz", gi, ni, "lab", bl, sizeof bl, err, sizeof err) != AMO_OK)
        fail_msg("%s", err);
    check_idx(&d, N, R, C);
    nn_data_free(&d);
    assert_int_equal(nn_data_idx_mem(&d, "img.gz", gi, ni - 3, "lab", bl, sizeof bl, err,
                                     sizeof err),
                     AMO_EFORMAT);
    assert_has(err, "img.gz: gzip member at compressed offset 0: truncated");
    assert_null(d.x);
}

/* A header that announces 2^26 images of 4096 x 4096 (2^50 bytes) in a
 * small file: refused as truncated before anything is allocated, raw and
 * gzip (which cannot expand more than 1032:1). */
static void idx_huge_header(void **state)
{
    (void)state;
    unsigned char bi[16], bl[8];
    put_be32(bi, 0x00000803);
    put_be32(bi + 4, 1u << 26);
    put_be32(bi + 8, 4096);
    put_be32(bi + 12, 4096);
    put_be32(bl, 0x00000801);
    put_be32(bl + 4, 1u << 26);
    NnDataset d;
    char err[1024] = "", img[300];
    assert_int_equal(nn_data_idx_mem(&d, "img", bi, 16, "lab", bl, 8, err, sizeof err),
                     AMO_EFORMAT);
    assert_has(err, "img: truncated at offset 16");
    path_in(img, sizeof img, "huge.gz");
    write_gz(img, bi, 16);
    static unsigned char gi[1 << 12];
    const size_t ni = copy_of(gi, img);
    assert_int_equal(nn_data_idx_mem(&d, "huge.gz", gi, ni, "lab", bl, 8, err, sizeof err),
                     AMO_EFORMAT);
    assert_has(err, "huge.gz: truncated");
    assert_has(err, "1032:1");
    assert_null(d.x);
}

static void cifar_from_memory(void **state)
{
    (void)state;
    static unsigned char buf[2 * REC];
    for (int r = 0; r < 2; r++) {
        buf[r * REC] = cifar_label(0, r);
        for (int k = 0; k < 3072; k++)
            buf[r * REC + 1 + k] = cifar_pixel(0, r, k);
    }
    NnDataset d;
    char err[1024] = "";
    assert_int_equal(nn_data_cifar_mem(&d, "batch", buf, sizeof buf, err, sizeof err), AMO_OK);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.c, 3);
    for (int r = 0; r < 2; r++) {
        assert_int_equal(d.y[r], cifar_label(0, r));
        for (int k = 0; k < 3072; k++)
            assert_int_equal(d.x[r * 3072 + k], cifar_pixel(0, r, k));
    }
    nn_data_free(&d);
    assert_int_equal(nn_data_cifar_mem(&d, "batch", buf, REC + 5, err, sizeof err), AMO_EFORMAT);
    assert_has(err, "batch: 3078 bytes");
    assert_int_equal(nn_data_cifar_mem(&d, "batch", buf, 0, err, sizeof err), AMO_EFORMAT);
    buf[REC] = 10;
    assert_int_equal(nn_data_cifar_mem(&d, "batch", buf, sizeof buf, err, sizeof err),
                     AMO_EFORMAT);
    assert_has(err, "batch: label 10 at offset 3073");
    assert_null(d.x);
}

/* ---- split --------------------------------------------------------------------- */

/* 130 examples, 4 classes of 55, 25, 25, 25. */
static void unbalanced(NnDataset *d)
{
    d->n = 130;
    d->c = d->h = d->w = 1;
    d->classes = 4;
    d->x = calloc(130, 1);
    d->y = malloc(130);
    for (int i = 0; i < 130; i++)
        d->y[i] = (uint8_t)(i < 100 ? i % 4 : 0);
}

static void check_split(const NnDataset *d, const NnSplit *s, int nval, const int *want)
{
    assert_int_equal(s->nval, nval);
    assert_int_equal(s->ntrain, d->n - nval);
    char *seen = calloc((size_t)d->n, 1);
    int count[4] = { 0 };
    for (int i = 0; i < s->nval; i++) {
        assert_true(s->val[i] >= 0 && s->val[i] < d->n);
        if (i)
            assert_true(s->val[i] > s->val[i - 1]); /* sorted, no repeats */
        seen[s->val[i]]++;
        count[d->y[s->val[i]]]++;
    }
    for (int i = 0; i < s->ntrain; i++) {
        assert_true(s->train[i] >= 0 && s->train[i] < d->n);
        if (i)
            assert_true(s->train[i] > s->train[i - 1]);
        seen[s->train[i]]++;
    }
    for (int i = 0; i < d->n; i++)
        assert_int_equal(seen[i], 1); /* disjoint, and together all */
    for (int k = 0; k < 4; k++)
        assert_int_equal(count[k], want[k]);
    free(seen);
}

static void split_stratified(void **state)
{
    (void)state;
    NnDataset d;
    unbalanced(&d);
    NnSplit a, b, c;
    char err[256] = "";
    assert_int_equal(nn_data_split(&d, 40, 7, &a, err, sizeof err), AMO_OK);
    check_split(&d, &a, 40, (const int[]){ 10, 10, 10, 10 });
    /* the same seed gives the same split; another seed another one */
    assert_int_equal(nn_data_split(&d, 40, 7, &b, err, sizeof err), AMO_OK);
    assert_memory_equal(a.val, b.val, 40 * sizeof(int));
    assert_memory_equal(a.train, b.train, 90 * sizeof(int));
    assert_int_equal(nn_data_split(&d, 40, 8, &c, err, sizeof err), AMO_OK);
    check_split(&d, &c, 40, (const int[]){ 10, 10, 10, 10 });
    assert_memory_not_equal(a.val, c.val, 40 * sizeof(int));
    nn_split_free(&a);
    nn_split_free(&b);
    nn_split_free(&c);
    /* a remainder goes to the first classes */
    assert_int_equal(nn_data_split(&d, 42, 1, &a, err, sizeof err), AMO_OK);
    check_split(&d, &a, 42, (const int[]){ 11, 11, 10, 10 });
    nn_split_free(&a);
    assert_int_equal(nn_data_split(&d, 0, 1, &a, err, sizeof err), AMO_OK);
    check_split(&d, &a, 0, (const int[]){ 0, 0, 0, 0 });
    nn_split_free(&a);
    /* 26 of each: classes 1..3 have only 25 */
    assert_int_equal(nn_data_split(&d, 104, 1, &a, err, sizeof err), AMO_EINVAL);
    assert_has(err, "104");
    assert_null(a.val);
    assert_int_equal(nn_data_split(&d, 130, 1, &a, err, sizeof err), AMO_EINVAL);
    assert_int_equal(nn_data_split(&d, -1, 1, &a, err, sizeof err), AMO_EINVAL);
    nn_data_free(&d);
}

static void stats(void **state)
{
    (void)state;
    uint8_t x[2 * 2 * 4] = { 0, 0, 0, 0, 51, 51, 51, 51, 255, 255, 255, 255, 51, 51, 51, 51 };
    uint8_t y[2] = { 0, 1 };
    const NnDataset d = { 2, 2, 2, 2, 2, x, y };
    float m[2], s[2];
    nn_data_stats(&d, (const int[]){ 0, 1 }, 2, m, s);
    assert_float_equal(m[0], 0.5, 1e-6);
    assert_float_equal(s[0], 0.5, 1e-6);
    assert_float_equal(m[1], 0.2, 1e-6);
    assert_float_equal(s[1], 1.0, 0); /* constant channel: no division by 0 */
}

/* ---- batcher ------------------------------------------------------------------- */

enum { BN_ = 50, BCH = 2, BH = 6, BW = 6, BIMG = BCH * BH * BW };

/* Example e has e in its first pixel; the other pixels are 1..255 (never 0,
 * so padding is recognisable). */
static void indexed(NnDataset *d)
{
    *d = (NnDataset){ BN_, BCH, BH, BW, 3, malloc(BN_ * BIMG), malloc(BN_) };
    for (int e = 0; e < BN_; e++) {
        d->y[e] = (uint8_t)(e % 3);
        for (int j = 0; j < BIMG; j++)
            d->x[e * BIMG + j] = (uint8_t)(j ? 1 + (e * 13 + j * 7) % 255 : e);
    }
}

/* Example ids of a batch (mean 0, std 1, no augmentation). */
static int id_of(const float *x) { return (int)lroundf(x[0] * 255.0f); }

static void batcher_epochs(void **state)
{
    (void)state;
    NnDataset d;
    indexed(&d);
    int idx[40], n = 0;
    for (int e = 0; e < BN_; e++)
        if (e % 5)
            idx[n++] = e;
    assert_int_equal(n, 40);
    NnBatcher b;
    assert_int_equal(nn_batcher_init(&b, &d, idx, n, 16, 3, NULL, NULL), AMO_OK);
    assert_int_equal(nn_batcher_steps(&b), 2); /* drop_last: 8 left over */
    static float x[16 * BIMG];
    int y[16], first[2][32];
    for (int ep = 0; ep < 2; ep++) {
        char seen[BN_] = { 0 };
        for (int s = 0; s < 2; s++) {
            assert_int_equal(nn_batcher_next(&b, x, y), 16);
            for (int i = 0; i < 16; i++) {
                const int e = id_of(x + i * BIMG);
                assert_true(e % 5 != 0 && e < BN_); /* only the listed examples */
                assert_int_equal(seen[e]++, 0);      /* each once per epoch */
                assert_int_equal(y[i], d.y[e]);
                first[ep][s * 16 + i] = e;
            }
        }
        assert_int_equal(nn_batcher_next(&b, x, y), 0);
        assert_int_equal(b.epoch, (uint64_t)ep + 1);
        assert_int_equal(b.pos, 0);
    }
    assert_memory_not_equal(first[0], first[1], sizeof first[0]); /* reshuffled */

    /* without drop_last: a short last batch, padded with zeros and -1 */
    b.drop_last = 0;
    nn_batcher_seek(&b, 0, 0);
    assert_int_equal(nn_batcher_steps(&b), 3);
    assert_int_equal(nn_batcher_next(&b, x, y), 16);
    assert_int_equal(nn_batcher_next(&b, x, y), 16);
    assert_int_equal(nn_batcher_next(&b, x, y), 8);
    for (int i = 8; i < 16; i++) {
        assert_int_equal(y[i], -1);
        for (int j = 0; j < BIMG; j++)
            assert_true(x[i * BIMG + j] == 0.0f);
    }
    assert_int_equal(nn_batcher_next(&b, x, y), 0);

    /* in order when not shuffled */
    b.shuffle = 0;
    b.drop_last = 1;
    nn_batcher_seek(&b, 5, 0);
    assert_int_equal(nn_batcher_next(&b, x, y), 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(id_of(x + i * BIMG), idx[i]);
    nn_batcher_free(&b);
    nn_data_free(&d);
}

/* Every batch of four epochs, then the same batches again after a seek to
 * any (epoch, pos): what a resumed run relies on.  With augmentation. */
static void batcher_seek_resumes(void **state)
{
    (void)state;
    NnDataset d;
    indexed(&d);
    int idx[BN_];
    for (int e = 0; e < BN_; e++)
        idx[e] = e;
    const float mean[2] = { 0.3f, 0.6f }, sd[2] = { 0.2f, 0.4f };
    enum { B = 16, STEPS = 3, EPOCHS = 4 };
    static float rec[EPOCHS][STEPS][B * BIMG], x[B * BIMG];
    static int ry[EPOCHS][STEPS][B], y[B];
    NnBatcher b;
    assert_int_equal(nn_batcher_init(&b, &d, idx, BN_, B, 11, mean, sd), AMO_OK);
    b.pad = 2;
    b.flip = 1;
    for (int ep = 0; ep < EPOCHS; ep++) {
        for (int s = 0; s < STEPS; s++)
            assert_int_equal(nn_batcher_next(&b, rec[ep][s], ry[ep][s]), B);
        assert_int_equal(nn_batcher_next(&b, x, y), 0);
    }
    nn_batcher_free(&b);
    assert_memory_not_equal(rec[0][0], rec[1][0], sizeof rec[0][0]);

    for (int ep = 0; ep < EPOCHS; ep++)
        for (int s = 0; s <= STEPS; s++) {
            NnBatcher c;
            assert_int_equal(nn_batcher_init(&c, &d, idx, BN_, B, 11, mean, sd), AMO_OK);
            c.pad = 2;
            c.flip = 1;
            nn_batcher_seek(&c, (uint64_t)ep, s * B);
            if (s == STEPS) { /* at the end of an epoch: the next one follows */
                assert_int_equal(nn_batcher_next(&c, x, y), 0);
                if (ep + 1 == EPOCHS) {
                    nn_batcher_free(&c);
                    continue;
                }
                assert_int_equal(nn_batcher_next(&c, x, y), B);
                assert_memory_equal(x, rec[ep + 1][0], sizeof x);
                assert_memory_equal(y, ry[ep + 1][0], sizeof y);
            } else {
                for (int t = s; t < STEPS; t++) {
                    assert_int_equal(nn_batcher_next(&c, x, y), B);
                    assert_memory_equal(x, rec[ep][t], sizeof x);
                    assert_memory_equal(y, ry[ep][t], sizeof y);
                }
            }
            nn_batcher_free(&c);
        }
    /* another seed: another order */
    NnBatcher c;
    assert_int_equal(nn_batcher_init(&c, &d, idx, BN_, B, 12, mean, sd), AMO_OK);
    assert_int_equal(nn_batcher_next(&c, x, y), B);
    assert_memory_not_equal(x, rec[0][0], sizeof x);
    nn_batcher_free(&c);
    nn_data_free(&d);
}

static void batcher_normalises(void **state)
{
    (void)state;
    NnDataset d;
    indexed(&d);
    int idx[BN_];
    for (int e = 0; e < BN_; e++)
        idx[e] = e;
    const float mean[2] = { 0.25f, 0.5f }, sd[2] = { 0.5f, 2.0f };
    static float x[BN_ * BIMG];
    int y[BN_];
    NnBatcher b;
    assert_int_equal(nn_batcher_init(&b, &d, idx, BN_, BN_, 1, mean, sd), AMO_OK);
    b.shuffle = 0;
    nn_batcher_seek(&b, 0, 0);
    assert_int_equal(nn_batcher_next(&b, x, y), BN_);
    for (int e = 0; e < BN_; e++)
        for (int j = 0; j < BIMG; j++) {
            const int ch = j / (BH * BW);
            const double want = (d.x[e * BIMG + j] / 255.0 - mean[ch]) / sd[ch];
            assert_float_equal(x[e * BIMG + j], want, 1e-6);
        }
    nn_batcher_free(&b);
    nn_data_free(&d);
}

/* Each augmented image is the source shifted by (dy, dx) in [-pad, pad] and
 * maybe mirrored, with the pixels from outside the image 0 before
 * normalisation, i.e. -mean/std after it. */
static int matches(const float *out, const uint8_t *src, int dy, int dx, int flip, float m,
                   float s)
{
    for (int c = 0; c < BCH; c++)
        for (int r = 0; r < BH; r++)
            for (int q = 0; q < BW; q++) {
                const int sr = r + dy, sq = (flip ? BW - 1 - q : q) + dx;
                const double v = sr >= 0 && sr < BH && sq >= 0 && sq < BW
                                     ? src[(c * BH + sr) * BW + sq] / 255.0
                                     : 0.0;
                if (fabs(out[(c * BH + r) * BW + q] - (v - m) / s) > 1e-5)
                    return 0;
            }
    return 1;
}

static void batcher_augments_with_zero_padding(void **state)
{
    (void)state;
    NnDataset d;
    indexed(&d);
    for (int e = 0; e < BN_; e++) /* first pixel too: no zero in any source */
        d.x[e * BIMG] = (uint8_t)(e + 1);
    int idx[BN_];
    for (int e = 0; e < BN_; e++)
        idx[e] = e;
    const float m = 0.5f, s = 0.25f;
    const float mean[2] = { m, m }, sd[2] = { s, s };
    static float x[10 * BIMG];
    int y[10];
    NnBatcher b;
    assert_int_equal(nn_batcher_init(&b, &d, idx, BN_, 10, 5, mean, sd), AMO_OK);
    b.shuffle = 0;
    b.pad = 2;
    b.flip = 1;
    int flips = 0, shifts = 0, padded = 0;
    for (int ep = 0; ep < 2; ep++) {
        nn_batcher_seek(&b, (uint64_t)ep, 0);
        for (int k = 0; k < 5; k++) {
            assert_int_equal(nn_batcher_next(&b, x, y), 10);
            for (int i = 0; i < 10; i++) {
                const int e = k * 10 + i;
                const float *o = x + i * BIMG;
                int found = 0;
                for (int dy = -2; dy <= 2 && !found; dy++)
                    for (int dx = -2; dx <= 2 && !found; dx++)
                        for (int f = 0; f < 2 && !found; f++)
                            if (matches(o, d.x + e * BIMG, dy, dx, f, m, s)) {
                                found = 1;
                                flips += f;
                                shifts += dy || dx;
                            }
                if (!found)
                    fail_msg("epoch %d example %d: not a shifted/mirrored copy", ep, e);
                for (int j = 0; j < BIMG; j++)
                    padded += o[j] == -m / s; /* -2: a zero pixel normalised */
            }
        }
    }
    assert_true(flips > 0 && flips < 100);
    assert_true(shifts > 50);
    assert_true(padded > 0);
    nn_batcher_free(&b);
    nn_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idx_reads_gzip_and_raw),
        cmocka_unit_test(idx_truncated),
        cmocka_unit_test(idx_bad_magic),
        cmocka_unit_test(idx_label_out_of_range),
        cmocka_unit_test(idx_count_mismatch),
        cmocka_unit_test(idx_trailing_garbage),
        cmocka_unit_test(idx_corrupted_gzip),
        cmocka_unit_test(idx_missing),
        cmocka_unit_test(idx_gzip_cut_in_trailer),
        cmocka_unit_test(idx_gzip_stored_flip),
        cmocka_unit_test(idx_gzip_trailing_data),
        cmocka_unit_test(idx_gzip_corrupt_deflate),
        cmocka_unit_test(idx_not_regular),
        cmocka_unit_test(idx_size_limits),
        cmocka_unit_test(mnist_dir),
        cmocka_unit_test(cifar_reads),
        cmocka_unit_test(cifar_broken),
        cmocka_unit_test(cifar_not_regular),
        cmocka_unit_test(idx_from_memory),
        cmocka_unit_test(idx_huge_header),
        cmocka_unit_test(cifar_from_memory),
        cmocka_unit_test(split_stratified),
        cmocka_unit_test(stats),
        cmocka_unit_test(batcher_epochs),
        cmocka_unit_test(batcher_seek_resumes),
        cmocka_unit_test(batcher_normalises),
        cmocka_unit_test(batcher_augments_with_zero_padding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
