#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "kernels/cpu.h"
#include "nn/types.h"

#ifdef AMO_HAVE_NN
#include <oneapi/dnnl/dnnl.h>
#endif

void hx_one_process(const char *cmd)
{
    if (hx_dist_active())
        hx_fail(HX_EXIT_USAGE,
                "%s runs as one process, and mpirun started %d ranks (each would do the same "
                "work at once and write the same files): start it without mpirun",
                cmd, hx_dist_size());
}

void hx_out_dir(const char *opt, const char *dir)
{
    if (!dir || !*dir)
        hx_fail(HX_EXIT_USAGE, "%s: expected a directory, got ''", opt);
    char *p = hx_malloc(strlen(dir) + 16);
    strcpy(p, dir);
    for (char *s = p + 1;; s++) {
        const char saved = *s;
        if (saved != '/' && saved != '\0')
            continue;
        *s = '\0';
        struct stat sb;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            hx_fail(HX_EXIT_USAGE, "%s %s: cannot create %s: %s", opt, dir, p, strerror(errno));
        if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
            hx_fail(HX_EXIT_USAGE, "%s %s: %s is not a directory", opt, dir, p);
        *s = saved;
        if (!saved)
            break;
    }
    /* access(W_OK) says yes to root on a read-only mount: try a file */
    snprintf(p, strlen(dir) + 16, "%s/.probeXXXXXX", dir);
    const int fd = mkstemp(p);
    if (fd < 0)
        hx_fail(HX_EXIT_USAGE, "%s %s: directory is not writable: %s", opt, dir, strerror(errno));
    close(fd);
    unlink(p);
    free(p);
}

static const char *g_arch; /* --arch before the command (main.c) */

void hx_set_arch_default(const char *ask) { g_arch = ask; }

const char *hx_arch_default(void) { return g_arch; }

void hx_apply_arch(const char *ask)
{
    const unsigned det = kn_cpu_detected();
    const char *from = "--arch";
    if (!ask)
        ask = g_arch;
    if (!ask) {
        const char *e = getenv("AMO_ARCH");
        const AmoStatus env = kn_cpu_init_from_env();
        if (env == AMO_EINVAL)
            hx_fail(HX_EXIT_USAGE, "AMO_ARCH=%s: unknown level (expected auto, scalar, avx2, "
                    "avx512 or neon)", e ? e : "");
        if (env != AMO_OK)
            hx_fail(HX_EXIT_USAGE, "AMO_ARCH=%s: this CPU does not have it (it has: %s)",
                    e ? e : "", kn_cpu_level_name(det));
        return;
    }
    const AmoStatus st = kn_cpu_set_arch(ask);
    if (st == AMO_EUNSUPPORTED)
        hx_fail(HX_EXIT_USAGE, "%s %s: this CPU does not have it (it has: %s)", from, ask,
                kn_cpu_level_name(det));
    if (st != AMO_OK)
        hx_fail(HX_EXIT_USAGE, "%s: unknown level '%s' (expected auto, scalar, avx2, avx512 or "
                "neon)", from, ask);
}

char *hx_command_line(const HxInvocation *whole)
{
    size_t len = 1;
    for (int i = 0; i < whole->argc; i++)
        len += 4 * strlen(whole->argv[i]) + 3;
    char *s = hx_malloc(len), *p = s;
    for (int i = 0; i < whole->argc; i++) {
        const char *a = whole->argv[i];
        const int plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789-_=./,:+@%") == strlen(a);
        if (i)
            *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (; *a; a++)
            p += *a == '\'' ? sprintf(p, "'\\''") : sprintf(p, "%c", *a);
        *p++ = '\'';
    }
    *p = '\0';
    return s;
}

const char *const hx_conv_algo_names[] = {
    [NN_CONV_ALGO_AUTO] = "auto", [NN_CONV_ALGO_DIRECT] = "direct",
    [NN_CONV_ALGO_WINOGRAD] = "winograd", [NN_CONV_ALGO_WINOGRAD + 1] = NULL,
};

const char *hx_onednn_version(void)
{
#ifdef AMO_HAVE_NN
    static char buf[96];
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, sizeof buf, "%d.%d.%d (%s, cpu runtime %u)", v->major, v->minor, v->patch,
             v->hash, v->cpu_runtime);
    return buf;
#else
    return "none";
#endif
}

/* ---- JSON ----------------------------------------------------------------- */

struct HxJson {
    AmoFile *file;
    FILE *f; /* its stream */
    int n;
};

HxJson *hx_json_open(const char *path)
{
    HxJson *j = hx_malloc(sizeof *j);
    char err[4200];
    if (amo_file_create(&j->file, path, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s", err);
    j->f = amo_file_stream(j->file);
    j->n = 0;
    fputs("{\n", j->f);
    return j;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_key(HxJson *j, const char *key)
{
    fputs(j->n++ ? ",\n  " : "  ", j->f);
    json_string(j->f, key);
    fputs(": ", j->f);
}

void hx_json_str(HxJson *j, const char *key, const char *value)
{
    json_key(j, key);
    json_string(j->f, value ? value : "");
}

void hx_json_int(HxJson *j, const char *key, long long value)
{
    json_key(j, key);
    fprintf(j->f, "%lld", value);
}

void hx_json_num(HxJson *j, const char *key, double value)
{
    json_key(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.17g", value);
    else
        fputs("null", j->f);
}

void hx_json_close(HxJson *j)
{
    char err[4200];
    fputs("\n}\n", j->f);
    if (amo_file_commit(j->file, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "%s", err);
    free(j);
}
