/* A data file's bytes, read in order: as they are, or gunzipped and
 * checked (nn/gzstream.c).  Internal to nn/ (data.c). */
#ifndef AMO_NN_GZSTREAM_H
#define AMO_NN_GZSTREAM_H

#include <stddef.h>
#include <stdint.h>

#define ZLIB_CONST /* next_in points into the file's bytes, which are only read */
#include <zlib.h>

#include "common/status.h"

/* One file's bytes, read in order: as they are, or, when they start with
 * the gzip magic, decompressed member after member (RFC 1952: gunzip reads
 * concatenated members), each checked to its trailer's CRC-32 and length.
 * The gzip wrapper is parsed here and zlib inflates raw deflate, so that a
 * cut trailer, a bad CRC and trailing bytes each say what and where. */
typedef struct NnSrc {
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
} NnSrc;

/* name: for messages; buf (len bytes) stays the caller's while s is open. */
AmoStatus nn_src_open(NnSrc *s, const char *name, const void *buf, size_t len, char *err,
                      size_t errlen);
void nn_src_close(NnSrc *s);
/* Exactly n decompressed bytes into dst; a short stream is an error naming
 * where it ends. */
AmoStatus nn_src_read(NnSrc *s, void *dst, size_t n, char *err, size_t errlen);
/* Whether n more bytes can be in the stream at all, before they are
 * allocated (deflate expands at most 1032:1). */
AmoStatus nn_src_can_hold(const NnSrc *s, size_t n, char *err, size_t errlen);
/* The stream ends here: the last member's trailer checked, no bytes left. */
AmoStatus nn_src_end(NnSrc *s, char *err, size_t errlen);

#endif
