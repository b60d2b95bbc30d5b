#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <getopt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/error.h"
#include "harness/parse.h"

/* Digits only: strtol would accept leading spaces and a sign. */
static int all_digits(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

long hx_parse_long(const char *opt, const char *s, long min, long max)
{
    const int neg = s && s[0] == '-';
    if (!s || !all_digits(s + neg, strlen(s + neg)))
        hx_fail(HX_EXIT_USAGE, "%s: expected an integer from %ld to %ld, got '%s'", opt, min, max,
                s ? s : "");
    errno = 0;
    const long x = strtol(s, NULL, 10);
    if (errno == ERANGE || x < min || x > max)
        hx_fail(HX_EXIT_USAGE, "%s: expected an integer from %ld to %ld, got '%s'", opt, min, max,
                s);
    return x;
}

size_t hx_parse_count(const char *opt, const char *s, size_t min, size_t max)
{
    const size_t len = s ? strlen(s) : 0;
    size_t digits = len, shift = 0;
    if (len > 0) {
        switch (s[len - 1]) {
        case 'K': case 'k': shift = 10; digits--; break;
        case 'M': case 'm': shift = 20; digits--; break;
        case 'G': case 'g': shift = 30; digits--; break;
        default: break;
        }
    }
    if (!all_digits(s, digits))
        hx_fail(HX_EXIT_USAGE, "%s: expected a count such as 4096, 64K or 64M, got '%s'", opt,
                s ? s : "");
    errno = 0;
    const unsigned long long x = strtoull(s, NULL, 10);
    if (errno == ERANGE || x > (SIZE_MAX >> shift) || (x << shift) < min || (x << shift) > max)
        hx_fail(HX_EXIT_USAGE, "%s: expected a count from %zu to %zu, got '%s'", opt, min, max,
                s);
    return (size_t)(x << shift);
}

int hx_parse_choice(const char *opt, const char *s, const char *const *names)
{
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        if (s && !strcmp(s, names[i]))
            return i;
        const size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    }
    hx_fail(HX_EXIT_USAGE, "%s: unknown value '%s' (expected one of: %s)", opt, s ? s : "",
            list);
}

void hx_getopt_fail(int c, char *const *argv)
{
    /* glibc: argv[optind - 1] is the long option as typed; optopt holds a
     * short option's letter (and, for a missing value, the long option's
     * val: not a name to show). */
    char shortopt[3] = { '-', (char)optopt, '\0' };
    const char *last = optind > 0 ? argv[optind - 1] : "";
    const char *name = !strncmp(last, "--", 2) || !optopt ? last : shortopt;
    if (c == ':')
        hx_fail(HX_EXIT_USAGE, "option '%s' needs a value", name);
    hx_fail(HX_EXIT_USAGE, "unknown option '%s'", name);
}
