#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness/error.h"

static const char *g_command;

void hx_set_command(const char *name)
{
    g_command = name;
}

void hx_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("amo-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (code == HX_EXIT_USAGE)
        fprintf(stderr, "Try 'amo-bench%s%s --help'.\n", g_command ? " " : "",
                g_command ? g_command : "");
    exit(code);
}

void hx_warn(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("amo-bench: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void *hx_malloc_(size_t bytes, const char *file, int line)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        hx_fail(HX_EXIT_FAIL, "out of memory allocating %zu bytes (%s:%d)", bytes, file, line);
    return p;
}
