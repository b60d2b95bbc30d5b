/* The seed corpus of the fuzz targets: small valid inputs, so that fuzzing
 * starts past the magic numbers and the checksum.
 *
 *     seeds DIR           writes DIR/idx/seed-*, DIR/cifar/seed-*, DIR/state/seed-*
 *     seeds --check DIR   exit 1 unless DIR holds those files byte for byte
 *
 * tests/fuzz/corpus/ is this program's output; the check (a test) says when
 * a format change has made it stale: then rerun `seeds tests/fuzz/corpus`.
 * Gzip members are written uncompressed (stored blocks), whose bytes do not
 * depend on the zlib version. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "optim/optim.h"
#include "tests/fuzz/fuzz.h"

typedef struct Bytes { unsigned char p[4096]; size_t n; } Bytes;

static void add(Bytes *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->p) {
        fprintf(stderr, "seeds: a seed outgrew %zu bytes\n", sizeof b->p);
        exit(1);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void add_be32(Bytes *b, uint32_t v)
{
    const unsigned char p[4] = { v >> 24, v >> 16 & 255, v >> 8 & 255, v & 255 };
    add(b, p, 4);
}

/* src as a gzip member of stored blocks. */
static Bytes gzip_stored(const Bytes *src)
{
    Bytes out = { .n = 0 };
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_NO_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        exit(1);
    z.next_in = (unsigned char *)src->p;
    z.avail_in = (uInt)src->n;
    z.next_out = out.p;
    z.avail_out = sizeof out.p;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        exit(1);
    out.n = sizeof out.p - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* 2 images of 2 x 3 pixels, labels 3 and 9 (the largest allowed). */
static void idx_pair(Bytes *images, Bytes *labels)
{
    *images = (Bytes){ .n = 0 };
    *labels = (Bytes){ .n = 0 };
    add_be32(images, 0x803);
    add_be32(images, 2);
    add_be32(images, 2);
    add_be32(images, 3);
    const unsigned char px[12] = { 0, 1, 2, 127, 128, 255, 9, 8, 7, 6, 5, 4 };
    add(images, px, sizeof px);
    add_be32(labels, 0x801);
    add_be32(labels, 2);
    add(labels, (const unsigned char[]){ 3, 9 }, 2);
}

static Bytes idx_seed(int gz_images, int gz_labels)
{
    Bytes im, lb, out = { .n = 0 };
    idx_pair(&im, &lb);
    if (gz_images)
        im = gzip_stored(&im);
    if (gz_labels)
        lb = gzip_stored(&lb);
    add(&out, (const unsigned char[]){ im.n & 255, im.n >> 8 }, FUZZ_IDX_SPLIT);
    add(&out, im.p, im.n);
    add(&out, lb.p, lb.n);
    return out;
}

/* The first file replaced by one record: label 3, pixels 255 - i. */
static Bytes cifar_seed(void)
{
    Bytes out = { .n = 0 };
    unsigned char rec[1 + 3073];
    rec[0] = 0;
    rec[1] = 3;
    for (int i = 2; i < (int)sizeof rec; i++)
        rec[i] = (unsigned char)(255 - i);
    add(&out, rec, sizeof rec);
    return out;
}

/* Optimizer i after two steps (nonzero counters and moments), saved. */
static Bytes state_seed(int i)
{
    FuzzOpt f;
    for (int j = 0; j < FUZZ_N0 + FUZZ_N1; j++)
        f.param[j] = 0.25f * (float)(j - 3);
    Opt *o = fuzz_opt_create(&f, i);
    if (!o)
        exit(1);
    for (int s = 0; s < 2; s++) {
        for (int j = 0; j < FUZZ_N0 + FUZZ_N1; j++)
            f.grad[j] = 0.125f * (float)(j + s) - 0.5f;
        OptStepInfo info;
        if (opt_step(o, &info) != AMO_OK)
            exit(1);
    }
    char path[200], err[256];
    snprintf(path, sizeof path, "%s/state", fuzz_dir);
    if (opt_save(o, path, FUZZ_STATE_TAG, err, sizeof err) != AMO_OK) {
        fprintf(stderr, "seeds: %s\n", err);
        exit(1);
    }
    opt_destroy(o);
    Bytes out = { .n = 0 };
    FILE *fp = fopen(path, "rb");
    if (!fp || (out.n = fread(out.p, 1, sizeof out.p, fp)) == sizeof out.p)
        exit(1);
    fclose(fp);
    return out;
}

/* Writes b to dir/sub/name, or (check) compares it with that file. */
static int emit(const char *dir, const char *sub, const char *name, const Bytes *b, int check)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (!check && ((mkdir(dir, 0777) != 0 && errno != EEXIST)
                   || (mkdir(path, 0777) != 0 && errno != EEXIST))) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    if (!check) {
        fuzz_write(path, b->p, b->n);
        return 0;
    }
    Bytes have = { .n = 0 };
    FILE *f = fopen(path, "rb");
    if (f) {
        have.n = fread(have.p, 1, sizeof have.p, f);
        fclose(f);
    }
    if (f && have.n == b->n && !memcmp(have.p, b->p, b->n))
        return 0;
    fprintf(stderr, "%s: %s: rerun `seeds %s` (tests/fuzz/seeds.c)\n", path,
            f ? "differs from what the formats are now" : "missing", dir);
    return 1;
}

int main(int argc, char **argv)
{
    const int check = argc == 3 && !strcmp(argv[1], "--check");
    if (argc != 2 + check) {
        fprintf(stderr, "usage: seeds [--check] DIR\n");
        return 2;
    }
    const char *dir = argv[1 + check];
    fuzz_dir_make("seeds");
    Bytes b[3] = { idx_seed(0, 0), idx_seed(1, 1), idx_seed(0, 1) };
    int bad = emit(dir, "idx", "seed-raw", &b[0], check)
              + emit(dir, "idx", "seed-gz", &b[1], check)
              + emit(dir, "idx", "seed-raw-gz", &b[2], check);
    b[0] = cifar_seed();
    bad += emit(dir, "cifar", "seed-one-record", &b[0], check);
    for (int i = 0; i < FUZZ_NOPT; i++) {
        char name[32];
        snprintf(name, sizeof name, "seed-%s%s", opt_algo_name(fuzz_opt_config(i).algo),
                 i == 1 ? "-bf16" : i == 3 ? "-plain" : i == 4 ? "-momentum" : "");
        b[0] = state_seed(i);
        bad += emit(dir, "state", name, &b[0], check);
    }
    return bad ? 1 : 0;
}
