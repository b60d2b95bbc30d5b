/* The harness's one CSV writer (RFC 4180), and its reader.  Rows go through
 * common/file.h's atomic writer: a reader sees the old file or the complete
 * new one, never a half-written one, and a run that dies leaves at most a
 * ".NAME.PID.K.tmp" temporary, never a truncated file.
 *
 * Fields are quoted when they hold a comma, a double quote, CR or LF, or
 * begin or end with a space; quotes inside are doubled.  Numbers are written
 * with "%.6g" (C locale); a NaN is an empty field.
 *
 * Errors: open and close return AMO_EIO (errno says why); the field calls
 * remember the first write error and close reports it. */
#ifndef AMO_HARNESS_CSV_H
#define AMO_HARNESS_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct HxCsv HxCsv;

/* Creates the temporary file and writes the header row (ncols names). */
AmoStatus hx_csv_open(HxCsv **out, const char *path, const char *const *header, int ncols);

void hx_csv_str(HxCsv *w, const char *s);   /* NULL: empty field */
void hx_csv_int(HxCsv *w, int64_t x);
void hx_csv_num(HxCsv *w, double x);         /* NaN: empty field  */

/* Ends the row.  AMO_EINVAL (and the file is poisoned: close fails) if the
 * row does not have ncols fields. */
AmoStatus hx_csv_end_row(HxCsv *w);

/* Flushes, syncs and renames the temporary over path, then frees w.  On any
 * error the temporary is removed, path is left as it was, and AMO_EIO (or
 * AMO_EINVAL for a bad row) is returned. */
AmoStatus hx_csv_close(HxCsv *w);

/* Removes the temporary and frees w: path is left as it was. */
void hx_csv_abort(HxCsv *w);

/* ---- reading back what the writer wrote ---- */

#define HX_CSV_MAX_FIELDS 128

typedef struct HxCsvRecord {
    int n;                                /* fields                           */
    const char *field[HX_CSV_MAX_FIELDS]; /* unquoted, NUL-ended, in text     */
    size_t at[HX_CSV_MAX_FIELDS];         /* each field's byte offset in buf  */
    char text[8192];
} HxCsvRecord;

/* Reads the record at byte *off of buf (len bytes) and moves *off past its
 * newline.  Strict: AMO_EFORMAT for a quote inside an unquoted field, text
 * after a closing quote, a quote left open, or more fields or text than rec
 * holds (*off then names the byte). */
AmoStatus hx_csv_record(const char *buf, size_t len, size_t *off, HxCsvRecord *rec);

#endif
