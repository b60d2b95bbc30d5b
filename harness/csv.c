#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/file.h"
#include "harness/csv.h"

struct HxCsv {
    AmoFile *file;
    FILE *f;        /* its stream */
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

void hx_csv_abort(HxCsv *w)
{
    if (!w)
        return;
    amo_file_abort(w->file);
    free(w);
}

AmoStatus hx_csv_open(HxCsv **out, const char *path, const char *const *header, int ncols)
{
    *out = NULL;
    if (!path || !*path || ncols < 1)
        return AMO_EINVAL;
    HxCsv *w = calloc(1, sizeof(*w));
    if (!w)
        return AMO_ENOMEM;
    const AmoStatus fs = amo_file_create(&w->file, path, NULL, 0);
    if (fs != AMO_OK) {
        free(w);
        return fs;
    }
    w->f = amo_file_stream(w->file);
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
    AmoStatus st = w->err;
    if (st == AMO_OK) {
        st = amo_file_commit(w->file, NULL, 0);
        w->errnum = errno;
    } else {
        amo_file_abort(w->file);
    }
    errno = w->errnum;
    free(w);
    return st;
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
