/* Files, one way each: a whole regular file read into memory, a file
 * written whole or not at all (a temporary beside it, fsync, rename, fsync
 * of the directory: a kill or a crash leaves the old file or the new one),
 * and the growable byte buffer that serialisers fill.  Library code: errors
 * come back as a status and a message naming the file; errno is kept. */
#ifndef AMO_COMMON_FILE_H
#define AMO_COMMON_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "common/status.h"

/* The whole regular file at path into *data (NUL-terminated one past *len;
 * the caller frees it).  A FIFO, directory or device is refused without
 * blocking (AMO_EIO, "not a regular file (it is a FIFO)").  A missing file
 * is AMO_EIO with errno ENOENT. */
AmoStatus amo_read_file(const char *path, unsigned char **data, size_t *len, char *err,
                        size_t errlen);

/* The size of the regular file at path (stat: no open, so a FIFO cannot
 * block); anything else is refused as amo_read_file refuses it. */
AmoStatus amo_file_size(const char *path, size_t *size, char *err, size_t errlen);

/* A file being written through its temporary ".NAME.PID.K.tmp" in the same
 * directory (hidden, and ending in ".tmp" so leftovers are easy to spot). */
typedef struct AmoFile AmoFile;
AmoStatus amo_file_create(AmoFile **out, const char *path, char *err, size_t errlen);
FILE *amo_file_stream(AmoFile *f);
/* Flush, fsync, rename over path, fsync the directory; frees f.  On any
 * failure the temporary is removed and path is left as it was. */
AmoStatus amo_file_commit(AmoFile *f, char *err, size_t errlen);
void amo_file_abort(AmoFile *f);

/* amo_file_create + one write + amo_file_commit. */
AmoStatus amo_write_atomic(const char *path, const void *data, size_t len, char *err,
                           size_t errlen);

/* A growable byte buffer; oom is set (and later puts ignored) when it
 * cannot grow. */
typedef struct AmoBuf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} AmoBuf;
void amo_buf_put(AmoBuf *b, const void *src, size_t n);
void amo_buf_free(AmoBuf *b);

#endif
