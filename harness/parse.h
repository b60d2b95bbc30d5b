/* Option values.  Each parser names the option and the value it refused
 * and exits with status 2 (harness/error.h). */
#ifndef AMO_HARNESS_PARSE_H
#define AMO_HARNESS_PARSE_H

#include <stddef.h>

#include "harness/error.h"

/* A decimal integer in [min, max], nothing else (no sign games, no
 * trailing characters, no overflow). */
long hx_parse_long(const char *opt, const char *s, long min, long max);

/* A count in [min, max]: a decimal integer with an optional binary suffix
 * K, M or G (x1024, x1024^2, x1024^3): "65536", "64K", "64M". */
size_t hx_parse_count(const char *opt, const char *s, size_t min, size_t max);

/* s is one of the NULL-terminated names: returns its index. */
int hx_parse_choice(const char *opt, const char *s, const char *const *names);

/* After getopt_long() returned '?' (unknown option) or ':' (missing value;
 * the optstring must start with ':' or "+:"): exits 2 naming the option. */
HX_NORETURN void hx_getopt_fail(int c, char *const *argv);

#endif
