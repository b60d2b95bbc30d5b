#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/csv.h"

struct HxCsv {
    FILE *f;
    char *path, *tmp;
    int ncols, col;
    AmoStatus err; /* first error, reported by close, */
    int errnum;   /* and its errno                    */
};

static void note(HxCsv *w, int bad)
{
    if (bad && w->err == AMO_OK) {
        w->err = AMO_EIO;
        w->errnum = errno;
    }
}

static void put_sep(HxCsv *w)
{
    if (w->col++ > 0)
        note(w, fputc(',', w->f) == EOF);
}

static int needs_quotes(const char *s)
{
    const size_t len = strlen(s);
    return strpbrk(s, ",\"\r\n") || (len && (s[0] == ' ' || s[len - 1] == ' '));
}

void hx_csv_str(HxCsv *w, const char *s)
{
    put_sep(w);
    if (!s || !*s)
        return;
    int bad = 0;
    if (!needs_quotes(s)) {
        bad = fputs(s, w->f) == EOF;
    } else {
        bad |= fputc('"', w->f) == EOF;
        for (; *s; s++) {
            if (*s == '"')
                bad |= fputc('"', w->f) == EOF;
            bad |= fputc(*s, w->f) == EOF;
        }
        bad |= fputc('"', w->f) == EOF;
    }
    note(w, bad);
}

void hx_csv_int(HxCsv *w, int64_t x)
{
    put_sep(w);
    note(w, fprintf(w->f, "%" PRId64, x) < 0);
}

void hx_csv_num(HxCsv *w, double x)
{
    put_sep(w);
    if (isnan(x))
        return;
    note(w, fprintf(w->f, "%.6g", x) < 0);
}

AmoStatus hx_csv_end_row(HxCsv *w)
{
    if (w->col != w->ncols) {
        w->err = AMO_EINVAL;
        return AMO_EINVAL;
    }
    w->col = 0;
    note(w, fputc('\n', w->f) == EOF);
    return w->err;
}

static void free_writer(HxCsv *w)
{
    free(w->path);
    free(w->tmp);
    free(w);
}

void hx_csv_abort(HxCsv *w)
{
    if (!w)
        return;
    if (w->f)
        fclose(w->f);
    unlink(w->tmp);
    free_writer(w);
}

AmoStatus hx_csv_open(HxCsv **out, const char *path, const char *const *header, int ncols)
{
    *out = NULL;
    if (!path || !*path || ncols < 1)
        return AMO_EINVAL;
    HxCsv *w = calloc(1, sizeof(*w));
    if (!w)
        return AMO_ENOMEM;
    /* The temporary lives beside path (same file system: rename is atomic),
     * hidden: ".<name>.XXXXXX". */
    const char *slash = strrchr(path, '/');
    const size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const size_t len = strlen(path);
    w->path = malloc(len + 1);
    w->tmp = malloc(len + 9);
    if (!w->path || !w->tmp) {
        free_writer(w);
        return AMO_ENOMEM;
    }
    memcpy(w->path, path, len + 1);
    memcpy(w->tmp, path, dirlen);
    snprintf(w->tmp + dirlen, len + 9 - dirlen, ".%s.XXXXXX", path + dirlen);
    const int fd = mkstemp(w->tmp);
    if (fd < 0) {
        free_writer(w);
        return AMO_EIO;
    }
    /* mkstemp makes the file 0600; results are meant to be shared. */
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    w->f = fdopen(fd, "w");
    if (!w->f) {
        close(fd);
        unlink(w->tmp);
        free_writer(w);
        return AMO_EIO;
    }
    w->ncols = ncols;
    for (int i = 0; i < ncols; i++)
        hx_csv_str(w, header[i]);
    const AmoStatus st = hx_csv_end_row(w);
    if (st != AMO_OK) {
        hx_csv_abort(w);
        return st;
    }
    *out = w;
    return AMO_OK;
}

AmoStatus hx_csv_close(HxCsv *w)
{
    if (w->col != 0 && w->err == AMO_OK)
        w->err = AMO_EINVAL; /* an unfinished row */
    note(w, fflush(w->f) == EOF);
    note(w, fsync(fileno(w->f)) != 0);
    note(w, fclose(w->f) == EOF);
    w->f = NULL;
    if (w->err == AMO_OK)
        note(w, rename(w->tmp, w->path) != 0);
    const AmoStatus st = w->err;
    if (st != AMO_OK)
        unlink(w->tmp);
    errno = w->errnum;
    free_writer(w);
    return st;
}

const char *hx_csv_path(const HxCsv *w)
{
    return w->path;
}

/* One record: fields are added to rec->text as they are read; *off follows
 * the reader, so that a failure leaves it at the offending byte. */
AmoStatus hx_csv_record(const char *buf, size_t len, size_t *off, HxCsvRecord *rec)
{
    size_t i = *off, t = 0;
    rec->n = 0;
    for (;;) {
        if (rec->n == HX_CSV_MAX_FIELDS || t == sizeof rec->text)
            break;
        rec->at[rec->n] = i;
        rec->field[rec->n++] = rec->text + t;
        const int quoted = i < len && buf[i] == '"';
        for (i += quoted; t + 1 < sizeof rec->text; i++) {
            if (i == len || (!quoted && (buf[i] == ',' || buf[i] == '\n')))
                break;
            if (buf[i] == '"' && !(quoted && i + 1 < len && buf[i + 1] == '"'))
                break; /* a closing quote, or a stray one */
            rec->text[t++] = buf[i];
            i += buf[i] == '"'; /* "" is one quote */
        }
        if (quoted && (i == len || buf[i] != '"'))
            break; /* open to the end, or text too long */
        i += quoted;
        rec->text[t++] = '\0';
        if (i == len || buf[i] == '\n') {
            *off = i + (i < len);
            return AMO_OK;
        }
        if (buf[i] != ',')
            break;
        i++;
    }
    *off = i;
    return AMO_EFORMAT;
}
