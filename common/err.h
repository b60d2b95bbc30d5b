/* The library's one way to report an error: a status, and a message naming
 * the file, offset, field or value in the caller's buffer.  Internal (not
 * installed): the public functions take (err, errlen) and call this. */
#ifndef AMO_COMMON_ERR_H
#define AMO_COMMON_ERR_H

#include <stddef.h>

#include "common/status.h"

/* Writes the message into err (when err and errlen are non-zero) and
 * returns st. */
AmoStatus amo_err(AmoStatus st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
