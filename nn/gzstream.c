/* A data file's bytes, read in order (nn/gzstream.h): gzip members are
 * parsed here and zlib inflates their raw deflate data. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "nn/gzstream.h"

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }



static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

AmoStatus nn_src_open(NnSrc *s, const char *name, const void *buf, size_t len, char *err,
                         size_t errlen)
{
    *s = (NnSrc){ .name = name, .buf = buf, .len = len };
    s->gz = len >= 2 && s->buf[0] == 0x1f && s->buf[1] == 0x8b;
    if (s->gz && inflateInit2(&s->z, -MAX_WBITS) != Z_OK) {
        s->gz = 0;
        return amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for zlib", name);
    }
    return AMO_OK;
}

void nn_src_close(NnSrc *s)
{
    if (s->gz)
        inflateEnd(&s->z);
}

static AmoStatus member_cut(const NnSrc *s, char *err, size_t len)
{
    return amo_err(AMO_EFORMAT, err, len,
                "%s: gzip member at compressed offset %zu: truncated at compressed offset %zu, "
                "in its header",
                s->name, s->pos, s->len);
}

/* The header of the member at s->pos (RFC 1952 section 2.3). */
static AmoStatus member_header(NnSrc *s, char *err, size_t len)
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
static AmoStatus member_trailer(NnSrc *s, char *err, size_t len)
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
static AmoStatus member_inflate(NnSrc *s, unsigned char *dst, size_t n, size_t *done, char *err,
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
static AmoStatus src_pull(NnSrc *s, unsigned char *dst, size_t n, size_t *got, char *err,
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

static AmoStatus src_short(const NnSrc *s, size_t end, size_t missing, char *err, size_t len)
{
    return amo_err(AMO_EFORMAT, err, len, "%s: truncated at offset %zu%s (%zu more bytes expected)",
                s->name, end, s->gz ? " of the decompressed data" : "", missing);
}

/* Exactly n bytes, or where the data end. */
AmoStatus nn_src_read(NnSrc *s, void *dst, size_t n, char *err, size_t len)
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
AmoStatus nn_src_can_hold(const NnSrc *s, size_t n, char *err, size_t len)
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
AmoStatus nn_src_end(NnSrc *s, char *err, size_t len)
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
