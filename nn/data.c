#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ZLIB_CONST /* next_in points into the file's bytes, which are only read */
#include <zlib.h>

#include "common/err.h"
#include "common/file.h"
#include "common/rng.h"
#include "nn/data.h"

void nn_data_free(NnDataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->y);
    memset(d, 0, sizeof(*d));
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* ---- files -------------------------------------------------------------------- */

/* ---- decompressed bytes ----------------------------------------------------------- */

/* One file's bytes, read in order: as they are, or, when they start with
 * the gzip magic, decompressed member after member (RFC 1952: gunzip reads
 * concatenated members), each checked to its trailer's CRC-32 and length.
 * The gzip wrapper is parsed here and zlib inflates raw deflate, so that a
 * cut trailer, a bad CRC and trailing bytes each say what and where. */
typedef struct Src {
    const char *name;          /* for messages                                   */
    const unsigned char *buf;  /* (len) the file                                 */
    size_t len, pos;           /* pos: the first byte not consumed               */
    size_t out;                /* decompressed offset                            */
    int gz;
    int in_member;             /* between a member's header and its trailer      */
    size_t member;             /* compressed offset of that member               */
    uint32_t crc;              /* CRC-32 and length of its output so far         */
    size_t member_out;
    z_stream z;
} Src;

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static AmoStatus src_open(Src *s, const char *name, const void *buf, size_t len, char *err,
                         size_t errlen)
{
    *s = (Src){ .name = name, .buf = buf, .len = len };
    s->gz = len >= 2 && s->buf[0] == 0x1f && s->buf[1] == 0x8b;
    if (s->gz && inflateInit2(&s->z, -MAX_WBITS) != Z_OK) {
        s->gz = 0;
        return amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for zlib", name);
    }
    return AMO_OK;
}

static void src_close(Src *s)
{
    if (s->gz)
        inflateEnd(&s->z);
}

static AmoStatus member_cut(const Src *s, char *err, size_t len)
{
    return amo_err(AMO_EFORMAT, err, len,
                "%s: gzip member at compressed offset %zu: truncated at compressed offset %zu, "
                "in its header",
                s->name, s->pos, s->len);
}

/* The header of the member at s->pos (RFC 1952 section 2.3). */
static AmoStatus member_header(Src *s, char *err, size_t len)
{
    const unsigned char *p = s->buf + s->pos;
    const size_t left = s->len - s->pos;
    if (left < 2 || p[0] != 0x1f || p[1] != 0x8b)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: %zu bytes of trailing data at compressed offset %zu, after the gzip "
                    "stream (not a gzip member)",
                    s->name, left, s->pos);
    if (left < 10)
        return member_cut(s, err, len);
    const unsigned flg = p[3];
    if (p[2] != 8)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: compression method %u at "
                    "offset %zu (8, deflate, is the only one)",
                    s->name, s->pos, p[2], s->pos + 2);
    if (flg & 0xe0)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: reserved flags %#x at offset %zu",
                    s->name, s->pos, flg & 0xe0, s->pos + 3);
    size_t k = 10; /* ID1 ID2 CM FLG MTIME(4) XFL OS */
    if (flg & 4) { /* FEXTRA: a 2-byte length, then that many bytes */
        if (left < 12)
            return member_cut(s, err, len);
        k += 2 + (size_t)(p[10] | p[11] << 8);
    }
    for (unsigned bit = 8; bit <= 16; bit <<= 1) /* FNAME, FCOMMENT: zero-terminated */
        if (flg & bit) {
            const unsigned char *nul = k < left ? memchr(p + k, 0, left - k) : NULL;
            if (!nul)
                return member_cut(s, err, len);
            k = (size_t)(nul - p) + 1;
        }
    const size_t end = k + (flg & 2 ? 2 : 0); /* FHCRC */
    if (end > left)
        return member_cut(s, err, len);
    if ((flg & 2) && (crc32_z(0, p, k) & 0xffff) != (unsigned)(p[k] | p[k + 1] << 8))
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: header CRC mismatch at offset %zu",
                    s->name, s->pos, s->pos + k);
    if (inflateReset(&s->z) != Z_OK)
        return amo_err(AMO_EFORMAT, err, len, "%s: zlib could not restart", s->name);
    s->member = s->pos;
    s->pos += end;
    s->in_member = 1;
    s->crc = 0;
    s->member_out = 0;
    return AMO_OK;
}

/* The 8-byte trailer after a member's deflate data: CRC-32, then the
 * length mod 2^32 (ISIZE), both little-endian. */
static AmoStatus member_trailer(Src *s, char *err, size_t len)
{
    const size_t left = s->len - s->pos;
    const unsigned char *t = s->buf + s->pos;
    if (left < 8)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: truncated at compressed offset "
                    "%zu, in its 8-byte CRC-32 and length trailer (%zu of its bytes there)",
                    s->name, s->member, s->len, left);
    if (le32(t) != s->crc)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: CRC-32 mismatch: the trailer at "
                    "compressed offset %zu says %08x, the %zu bytes it decompresses to (from "
                    "offset %zu) have %08x",
                    s->name, s->member, s->pos, (unsigned)le32(t), s->member_out,
                    s->out - s->member_out, (unsigned)s->crc);
    if (le32(t + 4) != (uint32_t)s->member_out)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: length mismatch: the trailer at "
                    "compressed offset %zu says %u bytes (mod 2^32), %zu were decompressed",
                    s->name, s->member, s->pos + 4, (unsigned)le32(t + 4), s->member_out);
    s->pos += 8;
    s->in_member = 0;
    return AMO_OK;
}

/* One inflate call into dst[0..n); adds what it made to *done. */
static AmoStatus member_inflate(Src *s, unsigned char *dst, size_t n, size_t *done, char *err,
                              size_t len)
{
    s->z.next_in = s->buf + s->pos;
    s->z.avail_in = (uInt)min_size(s->len - s->pos, UINT_MAX);
    s->z.next_out = dst;
    s->z.avail_out = (uInt)min_size(n, UINT_MAX);
    const int r = inflate(&s->z, Z_NO_FLUSH);
    const size_t made = (size_t)(s->z.next_out - dst);
    s->crc = (uint32_t)crc32_z(s->crc, dst, made);
    s->member_out += made;
    s->out += made;
    *done += made;
    s->pos = (size_t)(s->z.next_in - s->buf);
    if (r == Z_STREAM_END)
        return member_trailer(s, err, len);
    if (r == Z_OK)
        return AMO_OK;
    if (r == Z_MEM_ERROR)
        return amo_err(AMO_ENOMEM, err, len, "%s: out of memory for zlib", s->name);
    if (r == Z_BUF_ERROR && s->pos == s->len)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: gzip member at compressed offset %zu: truncated at compressed offset "
                    "%zu, in its deflate data (decompressed offset %zu)",
                    s->name, s->member, s->pos, s->out);
    return amo_err(AMO_EFORMAT, err, len,
                "%s: gzip member at compressed offset %zu: corrupt deflate data before "
                "compressed offset %zu (decompressed offset %zu): %s",
                s->name, s->member, s->pos, s->out, s->z.msg ? s->z.msg : "zlib error");
}

/* Up to n decompressed bytes into dst; fewer (*got < n) only where the
 * data end, every member complete and checked. */
static AmoStatus src_pull(Src *s, unsigned char *dst, size_t n, size_t *got, char *err,
                         size_t len)
{
    size_t done = 0;
    AmoStatus st = AMO_OK;
    if (!s->gz) {
        done = min_size(n, s->len - s->pos);
        memcpy(dst, s->buf + s->pos, done);
        s->pos += done;
        s->out += done;
    }
    while (s->gz && st == AMO_OK && done < n) {
        if (s->in_member)
            st = member_inflate(s, dst + done, n - done, &done, err, len);
        else if (s->pos < s->len)
            st = member_header(s, err, len);
        else
            break;
    }
    *got = done;
    return st;
}

static AmoStatus src_short(const Src *s, size_t end, size_t missing, char *err, size_t len)
{
    return amo_err(AMO_EFORMAT, err, len, "%s: truncated at offset %zu%s (%zu more bytes expected)",
                s->name, end, s->gz ? " of the decompressed data" : "", missing);
}

/* Exactly n bytes, or where the data end. */
static AmoStatus src_read(Src *s, void *dst, size_t n, char *err, size_t len)
{
    size_t got;
    const AmoStatus st = src_pull(s, dst, n, &got, err, len);
    if (st == AMO_OK && got < n)
        return src_short(s, s->out, n - got, err, len);
    return st;
}

/* Whether the rest of the file can hold n more bytes, asked before they
 * are allocated: a header that claims gigabytes in a small file is refused
 * without them.  Deflate expands at most 1032:1 (https://zlib.net/zlib_tech.html);
 * the + 1 covers a match that zlib has decoded but not yet written out. */
static AmoStatus src_can_hold(const Src *s, size_t n, char *err, size_t len)
{
    const size_t left = s->len - s->pos;
    if (!s->gz && n > left)
        return src_short(s, s->len, n - left, err, len);
    if (s->gz && n / 1032 > left + 1)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: truncated: %zu bytes expected from offset %zu of the decompressed "
                    "data, and the %zu compressed bytes left hold at most %zu (deflate expands "
                    "at most 1032:1)",
                    s->name, n, s->out, left, (left + 1) * 1032);
    return AMO_OK;
}

/* After the last item: more data is an error (a wrong or concatenated file
 * would pass otherwise), and so is a gzip stream that does not end whole. */
static AmoStatus src_end(Src *s, char *err, size_t len)
{
    unsigned char extra;
    size_t got;
    const size_t at = s->out;
    const AmoStatus st = src_pull(s, &extra, 1, &got, err, len);
    if (st == AMO_OK && got)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: unexpected data after the last item at offset %zu%s", s->name, at,
                    s->gz ? " of the decompressed data" : "");
    return st;
}

/* ---- IDX ------------------------------------------------------------------ */

#define IDX_MAX_N (1u << 26)
#define IDX_MAX_SIDE 4096u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The magic and the ndim sizes that start an IDX file. */
static AmoStatus idx_header(Src *s, int ndim, uint32_t *dims, char *err, size_t len)
{
    unsigned char h[16];
    AmoStatus st = src_read(s, h, 4, err, len);
    if (st == AMO_OK && (h[0] || h[1] || h[2] != 0x08 || h[3] != ndim))
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: bad magic %02x%02x%02x%02x at offset 0 (expected 000008%02x: IDX, "
                    "unsigned bytes, %d dimensions)",
                    s->name, h[0], h[1], h[2], h[3], ndim, ndim);
    if (st == AMO_OK)
        st = src_read(s, h + 4, 4 * (size_t)ndim, err, len);
    for (int i = 0; st == AMO_OK && i < ndim; i++)
        dims[i] = be32(h + 4 + 4 * i);
    return st;
}

/* The counts agree and the sizes are ones this loader takes. */
static AmoStatus idx_sizes(const char *images, const uint32_t *di, const char *labels,
                          uint32_t nlabels, char *err, size_t len)
{
    if (di[0] != nlabels)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s has %u images and %s %u labels (the counts at offset 4 do not match)",
                    images, di[0], labels, nlabels);
    if (di[0] == 0)
        return amo_err(AMO_EFORMAT, err, len, "%s: 0 images at offset 4", images);
    if (di[0] > IDX_MAX_N)
        return amo_err(AMO_EFORMAT, err, len, "%s: %u images at offset 4: more than the %u allowed",
                    images, di[0], IDX_MAX_N);
    if (di[1] == 0 || di[2] == 0 || di[1] > IDX_MAX_SIDE || di[2] > IDX_MAX_SIDE)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: %u x %u images at offset 8: each side must be in 1..%u", images, di[1],
                    di[2], IDX_MAX_SIDE);
    if ((uint64_t)di[0] * di[1] * di[2] > SIZE_MAX) /* 32-bit machines */
        return amo_err(AMO_EFORMAT, err, len, "%s: %u x %u x %u pixels at offset 4: more than %zu",
                    images, di[0], di[1], di[2], (size_t)SIZE_MAX);
    return AMO_OK;
}

/* Each stream is read to its end and checked before the labels are looked
 * at: a corrupt file is reported as corrupt, not by a symptom. */
AmoStatus nn_data_idx_mem(NnDataset *d, const char *images, const void *ibuf, size_t ilen,
                         const char *labels, const void *lbuf, size_t llen, char *err,
                         size_t errlen)
{
    memset(d, 0, sizeof(*d));
    Src si, sl;
    uint32_t di[3] = { 0 }, dl[1] = { 0 };
    AmoStatus st = src_open(&si, images, ibuf, ilen, err, errlen);
    if (st != AMO_OK)
        return st;
    st = src_open(&sl, labels, lbuf, llen, err, errlen);
    if (st == AMO_OK)
        st = idx_header(&si, 3, di, err, errlen);
    if (st == AMO_OK)
        st = idx_header(&sl, 1, dl, err, errlen);
    if (st == AMO_OK)
        st = idx_sizes(images, di, labels, dl[0], err, errlen);
    const size_t n = di[0], px = (size_t)di[1] * di[2];
    if (st == AMO_OK)
        st = src_can_hold(&si, n * px, err, errlen);
    if (st == AMO_OK)
        st = src_can_hold(&sl, n, err, errlen);
    if (st == AMO_OK && (!(d->x = malloc(n * px)) || !(d->y = malloc(n))))
        st = amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for %zu images", images, n);
    if (st == AMO_OK)
        st = src_read(&si, d->x, n * px, err, errlen);
    if (st == AMO_OK)
        st = src_end(&si, err, errlen);
    if (st == AMO_OK)
        st = src_read(&sl, d->y, n, err, errlen);
    if (st == AMO_OK)
        st = src_end(&sl, err, errlen);
    for (size_t i = 0; st == AMO_OK && i < n; i++)
        if (d->y[i] > 9)
            st = amo_err(AMO_EFORMAT, err, errlen, "%s: label %u at offset %zu is not in 0..9",
                      labels, d->y[i], 8 + i);
    src_close(&si);
    src_close(&sl);
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)n, 1, (int)di[1], (int)di[2], 10, d->x, d->y };
    return AMO_OK;
}

AmoStatus nn_data_idx(NnDataset *d, const char *images, const char *labels, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof(*d));
    unsigned char *bi = NULL, *bl = NULL;
    size_t ni = 0, nl = 0;
    AmoStatus st = amo_read_file(images, &bi, &ni, err, errlen);
    if (st == AMO_OK)
        st = amo_read_file(labels, &bl, &nl, err, errlen);
    if (st == AMO_OK)
        st = nn_data_idx_mem(d, images, bi, ni, labels, bl, nl, err, errlen);
    free(bi);
    free(bl);
    return st;
}

/* dir/name.gz if it exists, else dir/name. */
static void pick(char *out, size_t len, const char *dir, const char *name)
{
    struct stat sb;
    snprintf(out, len, "%s/%s.gz", dir, name);
    if (stat(out, &sb) == 0)
        return;
    snprintf(out, len, "%s/%s", dir, name);
}

AmoStatus nn_data_mnist(NnDataset *train, NnDataset *test, const char *dir, char *err,
                       size_t errlen)
{
    char a[4096], b[4096];
    struct stat sb;
    pick(a, sizeof a, dir, "train-images-idx3-ubyte");
    if (stat(a, &sb) != 0)
        return amo_err(AMO_EIO, err, errlen,
                    "no Fashion-MNIST/MNIST in %s (looked for train-images-idx3-ubyte[.gz]): "
                    "install the Debian package dataset-fashion-mnist, or name the directory",
                    dir);
    pick(b, sizeof b, dir, "train-labels-idx1-ubyte");
    AmoStatus st = nn_data_idx(train, a, b, err, errlen);
    if (st != AMO_OK)
        return st;
    pick(a, sizeof a, dir, "t10k-images-idx3-ubyte");
    pick(b, sizeof b, dir, "t10k-labels-idx1-ubyte");
    st = nn_data_idx(test, a, b, err, errlen);
    if (st == AMO_OK && (test->h != train->h || test->w != train->w)) {
        st = amo_err(AMO_EFORMAT, err, errlen,
                  "%s: %d x %d images at offset 8, the training images are %d x %d", a,
                  test->h, test->w, train->h, train->w);
        nn_data_free(test);
    }
    if (st != AMO_OK)
        nn_data_free(train);
    return st;
}

/* ---- CIFAR-10 ---------------------------------------------------------------- */

#define CIFAR_REC 3073

static AmoStatus cifar_size(const char *name, size_t size, char *err, size_t len)
{
    if (size == 0 || size % CIFAR_REC)
        return amo_err(AMO_EFORMAT, err, len,
                    "%s: %zu bytes is not a whole number of %d-byte records "
                    "(truncated record at offset %zu)",
                    name, size, CIFAR_REC, size / CIFAR_REC * CIFAR_REC);
    if (size / CIFAR_REC > INT_MAX)
        return amo_err(AMO_EFORMAT, err, len, "%s: %zu records, more than %d", name,
                    size / CIFAR_REC, INT_MAX);
    return AMO_OK;
}

/* The nrec records of buf into x (3072 pixels each) and y. */
static AmoStatus cifar_records(uint8_t *x, uint8_t *y, const char *name, const unsigned char *buf,
                              size_t nrec, char *err, size_t len)
{
    for (size_t r = 0; r < nrec; r++) {
        const unsigned char *rec = buf + r * CIFAR_REC;
        if (rec[0] > 9)
            return amo_err(AMO_EFORMAT, err, len, "%s: label %u at offset %zu is not in 0..9", name,
                        rec[0], r * CIFAR_REC);
        y[r] = rec[0];
        memcpy(x + r * 3072, rec + 1, 3072);
    }
    return AMO_OK;
}

AmoStatus nn_data_cifar_mem(NnDataset *d, const char *name, const void *buf, size_t len,
                           char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    AmoStatus st = cifar_size(name, len, err, errlen);
    if (st != AMO_OK)
        return st;
    const size_t n = len / CIFAR_REC;
    d->x = malloc(n * 3072);
    d->y = malloc(n);
    st = d->x && d->y ? cifar_records(d->x, d->y, name, buf, n, err, errlen)
                      : amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for %zu images", name, n);
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)n, 3, 32, 32, 10, d->x, d->y };
    return AMO_OK;
}

static AmoStatus cifar_files(NnDataset *d, const char *dir, const char *const *names, int count,
                            char *err, size_t errlen)
{
    memset(d, 0, sizeof(*d));
    char path[4096];
    size_t total = 0, sizes[8], size;
    /* every size first, for one allocation (amo_read_file checks again) */
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        AmoStatus st = amo_file_size(path, &size, err, errlen);
        if (st != AMO_OK && errno == ENOENT)
            return amo_err(AMO_EIO, err, errlen,
                           "%s: missing (CIFAR-10 binary version: data_batch_1.bin .. "
                           "data_batch_5.bin and test_batch.bin)",
                           path);
        if (st == AMO_OK)
            st = cifar_size(path, size, err, errlen);
        if (st != AMO_OK)
            return st;
        sizes[i] = size / CIFAR_REC;
        total += sizes[i];
    }
    d->x = malloc(total * 3072);
    d->y = malloc(total);
    AmoStatus st = AMO_OK;
    if (!d->x || !d->y)
        st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for %zu CIFAR-10 images", total);
    size_t k = 0;
    for (int i = 0; i < count && st == AMO_OK; k += sizes[i++]) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unsigned char *buf;
        size_t len;
        st = amo_read_file(path, &buf, &len, err, errlen);
        if (st == AMO_OK && len != sizes[i] * CIFAR_REC)
            st = amo_err(AMO_EIO, err, errlen, "%s: %zu bytes, not %zu: changed while read", path,
                      len, sizes[i] * CIFAR_REC);
        if (st == AMO_OK)
            st = cifar_records(d->x + k * 3072, d->y + k, path, buf, sizes[i], err, errlen);
        free(buf);
    }
    if (st != AMO_OK) {
        nn_data_free(d);
        return st;
    }
    *d = (NnDataset){ (int)total, 3, 32, 32, 10, d->x, d->y };
    return AMO_OK;
}

AmoStatus nn_data_cifar10(NnDataset *train, NnDataset *test, const char *dir, char *err,
                         size_t errlen)
{
    static const char *const tr[] = { "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                      "data_batch_4.bin", "data_batch_5.bin" };
    static const char *const te[] = { "test_batch.bin" };
    AmoStatus st = cifar_files(train, dir, tr, 5, err, errlen);
    if (st != AMO_OK)
        return st;
    st = cifar_files(test, dir, te, 1, err, errlen);
    if (st != AMO_OK)
        nn_data_free(train);
    return st;
}

/* ---- synthetic ---------------------------------------------------------------- */

AmoStatus nn_data_synthetic(NnDataset *d, int n, int c, int h, int w, int classes, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1 || classes > 256)
        return AMO_EINVAL;
    const size_t px = (size_t)c * h * w;
    d->x = malloc((size_t)n * px);
    d->y = malloc((size_t)n);
    if (!d->x || !d->y) {
        nn_data_free(d);
        return AMO_ENOMEM;
    }
    AmoRng r = amo_rng(seed);
    for (int i = 0; i < n; i++) {
        const int y = (int)amo_rng_below(&r, (uint64_t)classes);
        d->y[i] = (uint8_t)y;
        /* class y brightens the rows r with r % classes == y */
        for (size_t j = 0; j < px; j++) {
            const int row = (int)(j / (size_t)w % (size_t)h);
            const int lit = row % classes == y;
            const double v = 64.0 + (lit ? 96.0 : 0.0) + 32.0 * amo_rng_normal(&r);
            d->x[(size_t)i * px + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    *d = (NnDataset){ n, c, h, w, classes, d->x, d->y };
    return AMO_OK;
}

/* ---- split and statistics --------------------------------------------------------- */

void nn_split_free(NnSplit *s)
{
    if (!s)
        return;
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof(*s));
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void shuffle(int *a, int n, AmoRng *r)
{
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)amo_rng_below(r, (uint64_t)i + 1);
        const int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

AmoStatus nn_data_split(const NnDataset *d, int nval, uint64_t seed, NnSplit *s, char *err,
                       size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (nval < 0 || nval >= d->n)
        return amo_err(AMO_EINVAL, err, errlen, "validation size %d: must be in [0, %d)", nval, d->n);
    int *perm = malloc((size_t)d->n * sizeof(int));
    int *count = calloc((size_t)d->classes, sizeof(int));
    s->val = malloc((size_t)(nval ? nval : 1) * sizeof(int));
    s->train = malloc((size_t)d->n * sizeof(int));
    if (!perm || !count || !s->val || !s->train) {
        free(perm);
        free(count);
        nn_split_free(s);
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for the split");
    }
    for (int i = 0; i < d->n; i++)
        perm[i] = i;
    AmoRng r = amo_rng(seed);
    shuffle(perm, d->n, &r);
    /* quota per class: nval / classes, the remainder to the first classes */
    for (int i = 0; i < d->n; i++) {
        const int y = d->y[perm[i]];
        const int quota = nval / d->classes + (y < nval % d->classes);
        if (count[y] < quota && s->nval < nval) {
            count[y]++;
            s->val[s->nval++] = perm[i];
        } else {
            s->train[s->ntrain++] = perm[i];
        }
    }
    free(perm);
    free(count);
    qsort(s->val, (size_t)s->nval, sizeof(int), cmp_int);
    qsort(s->train, (size_t)s->ntrain, sizeof(int), cmp_int);
    if (s->nval != nval) {
        const int got = s->nval;
        nn_split_free(s);
        return amo_err(AMO_EINVAL, err, errlen,
                    "validation size %d: the classes are too small for a stratified split "
                    "(got %d)", nval, got);
    }
    return AMO_OK;
}

void nn_data_stats(const NnDataset *d, const int *idx, int n, float *mean, float *std)
{
    const size_t hw = (size_t)d->h * d->w;
    for (int c = 0; c < d->c; c++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < n; i++) {
            const uint8_t *p = d->x + ((size_t)idx[i] * d->c + c) * hw;
            uint64_t a = 0, a2 = 0;
            for (size_t j = 0; j < hw; j++) {
                a += p[j];
                a2 += (uint64_t)p[j] * p[j];
            }
            s += (double)a;
            s2 += (double)a2;
        }
        const double cnt = (double)n * hw, m = s / cnt;
        const double var = s2 / cnt - m * m;
        mean[c] = (float)(m / 255.0);
        std[c] = (float)(sqrt(var > 0 ? var : 0) / 255.0);
        if (std[c] <= 0.0f)
            std[c] = 1.0f;
    }
}

/* ---- batches ---------------------------------------------------------------- */

AmoStatus nn_batcher_init(NnBatcher *b, const NnDataset *d, const int *idx, int n, int batch,
                         uint64_t seed, const float *mean, const float *std)
{
    memset(b, 0, sizeof(*b));
    if (!d || !idx || n < 1 || batch < 1 || d->c > 4)
        return AMO_EINVAL;
    *b = (NnBatcher){ .d = d, .idx = idx, .n = n, .batch = batch, .shuffle = 1, .drop_last = 1,
                      .seed = seed };
    for (int c = 0; c < d->c; c++) {
        b->mean[c] = mean ? mean[c] : 0.0f;
        b->std[c] = std ? std[c] : 1.0f;
    }
    b->order = malloc((size_t)n * sizeof(int));
    if (!b->order)
        return AMO_ENOMEM;
    nn_batcher_seek(b, 0, 0);
    return AMO_OK;
}

void nn_batcher_free(NnBatcher *b)
{
    if (b)
        free(b->order);
}

void nn_batcher_seek(NnBatcher *b, uint64_t epoch, int pos)
{
    b->epoch = epoch;
    b->pos = pos;
    for (int i = 0; i < b->n; i++)
        b->order[i] = b->idx[i];
    if (b->shuffle) {
        AmoRng r = amo_rng(amo_mix64(b->seed) ^ amo_mix64(epoch + 1));
        shuffle(b->order, b->n, &r);
    }
}

int nn_batcher_steps(const NnBatcher *b)
{
    return b->drop_last ? b->n / b->batch : (b->n + b->batch - 1) / b->batch;
}

int nn_batcher_next(NnBatcher *b, float *x, int *y)
{
    const NnDataset *d = b->d;
    const int left = b->n - b->pos;
    if (left <= 0 || (b->drop_last && left < b->batch)) {
        nn_batcher_seek(b, b->epoch + 1, 0);
        return 0;
    }
    const int cnt = left < b->batch ? left : b->batch;
    const int C = d->c, H = d->h, W = d->w;
    const size_t img = (size_t)C * H * W;
    memset(x, 0, (size_t)b->batch * img * sizeof(float));
    for (int i = 0; i < b->batch; i++)
        y[i] = -1;
    for (int i = 0; i < cnt; i++) {
        const int e = b->order[b->pos + i];
        y[i] = d->y[e];
        int dy = 0, dx = 0, flip = 0;
        if (b->pad > 0 || b->flip) {
            /* per position, from (seed, epoch, position): resumable */
            const uint64_t u = amo_rng_at(amo_mix64(b->seed ^ 0x5bd1e995u) ^ b->epoch,
                                         (uint64_t)(b->pos + i));
            if (b->pad > 0) {
                dy = (int)(u % (uint64_t)(2 * b->pad + 1)) - b->pad;
                dx = (int)((u >> 16) % (uint64_t)(2 * b->pad + 1)) - b->pad;
            }
            flip = b->flip && ((u >> 32) & 1);
        }
        const uint8_t *src = d->x + (size_t)e * img;
        float *dst = x + (size_t)i * img;
        for (int c = 0; c < C; c++) {
            const float m = b->mean[c], is = 1.0f / b->std[c];
            for (int r = 0; r < H; r++)
                for (int q = 0; q < W; q++) {
                    const int sr = r + dy, sq = (flip ? W - 1 - q : q) + dx;
                    /* zero padding is zero before normalisation */
                    const float v = sr >= 0 && sr < H && sq >= 0 && sq < W
                                        ? src[((size_t)c * H + sr) * W + sq] / 255.0f
                                        : 0.0f;
                    dst[((size_t)c * H + r) * W + q] = (v - m) * is;
                }
        }
    }
    b->pos += cnt;
    return cnt;
}
