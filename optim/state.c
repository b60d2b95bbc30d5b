/* The optimizer's state file: opt_save and opt_load (optim/optim.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/file.h"
#include "common/hash.h"
#include "kernels/bf16.h"
#include "optim/opt_impl.h"

/* ---- the state file ----------------------------------------------------------
 * Little-endian, in this order:
 *     0   char[8]  "AMOSTATE"
 *     8   u32      format version (2)
 *    12   u32      header bytes (from offset 0 to the first moment buffer)
 *    16   u64      the caller's tag (opaque: e.g. a hash of what identifies its run)
 *    24   u64      steps, skipped, clipped
 *    48   hyperparameters, as hyper_fields() lists them (u32/f32/u64)
 *    ..   u32      tensor count, then u64 elements per tensor
 *    ..   u32      moment buffers, u32 bytes per element, u64 elements each
 *    ..   the moment buffers, one after the other
 *   end   u64      FNV-1a 64 of every byte before it
 * A file another optimizer cannot continue from exactly, or that carries
 * another tag, is refused. */

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the state file is written in host order, assumed little-endian"
#endif

#define STATE_MAGIC "AMOSTATE"
#define STATE_VERSION 2u

static void put_u32(AmoBuf *b, uint32_t x) { amo_buf_put(b, &x, 4); }
static void put_u64(AmoBuf *b, uint64_t x) { amo_buf_put(b, &x, 8); }
static void put_f32(AmoBuf *b, float x) { amo_buf_put(b, &x, 4); }

/* Every hyperparameter of OptConfig but the thread count (results do not
 * depend on it), with its name for error messages. */
typedef struct Field { const char *name; char type; size_t off; } Field;
#define F(t, name) { #name, t, offsetof(OptConfig, name) }
static const Field hyper_fields[] = {
    F('u', algo), F('f', lr), F('f', beta), F('f', gamma), F('f', eps), F('u', bias_correction),
    F('f', momentum), F('f', dampening), F('u', nesterov), F('f', alpha), F('u', clip),
    F('f', tau), F('f', lo), F('f', hi), F('f', weight_decay), F('u', decay_mode),
    F('u', schedule), F('q', warmup), F('q', step_size), F('f', step_gamma),
    F('q', total_steps), F('f', min_lr), F('u', state), F('q', seed),
};
#undef F
#define NFIELDS (sizeof(hyper_fields) / sizeof(hyper_fields[0]))

static void put_field(AmoBuf *b, const OptConfig *c, const Field *f)
{
    const char *p = (const char *)c + f->off;
    if (f->type == 'f') {
        float x;
        memcpy(&x, p, 4);
        put_f32(b, x);
    } else if (f->type == 'q') {
        uint64_t x;
        memcpy(&x, p, 8);
        put_u64(b, x);
    } else {
        int x; /* ints and enums */
        memcpy(&x, p, sizeof x);
        put_u32(b, (uint32_t)x);
    }
}

static size_t field_size(const Field *f) { return f->type == 'q' ? 8 : 4; }

static void put_header(AmoBuf *b, const Opt *o, uint64_t tag)
{
    amo_buf_put(b, STATE_MAGIC, 8);
    put_u32(b, STATE_VERSION);
    put_u32(b, 0); /* header bytes, patched below */
    put_u64(b, tag);
    put_u64(b, o->steps);
    put_u64(b, o->skipped);
    put_u64(b, o->clipped);
    for (size_t i = 0; i < NFIELDS; i++)
        put_field(b, &o->cfg, &hyper_fields[i]);
    put_u32(b, (uint32_t)o->count);
    for (int i = 0; i < o->count; i++)
        put_u64(b, o->t[i].n);
    put_u32(b, (uint32_t)opt_state_buffers(&o->cfg));
    put_u32(b, (uint32_t)opt_state_elem_size(&o->cfg));
    put_u64(b, o->total);
    if (!b->oom) {
        const uint32_t hb = (uint32_t)b->len;
        memcpy(b->p + 12, &hb, 4);
    }
}

AmoStatus opt_save(const Opt *o, const char *path, uint64_t tag, char *err, size_t errlen)
{
    if (!o || !path)
        return amo_err(AMO_EINVAL, err, errlen, "opt_save: NULL optimizer or path");
    AmoBuf b = { 0 };
    put_header(&b, o, tag);
    const size_t sb = o->total * opt_state_elem_size(&o->cfg);
    if (o->s0)
        amo_buf_put(&b, o->s0, sb);
    if (o->s1)
        amo_buf_put(&b, o->s1, sb);
    if (!b.oom)
        put_u64(&b, amo_fnv1a64(b.p, b.len));
    /* on disk, whole, before it returns: a checkpoint may name this file */
    const AmoStatus st = b.oom ? amo_err(AMO_ENOMEM, err, errlen,
                                         "%s: out of memory building the state", path)
                               : amo_write_atomic(path, b.p, b.len, err, errlen);
    amo_buf_free(&b);
    return st;
}

/* Every moment finite, and the second moments (AMO and Adam v in s1,
 * RMSprop v in s0) not negative; else *bad is the byte offset of the first
 * that is not. */
static int moments_ok(const Opt *o, const unsigned char *p, size_t *bad)
{
    const int nb = opt_state_buffers(&o->cfg);
    const int second = o->cfg.algo == OPT_RMSPROP ? 0 : o->cfg.algo == OPT_SGD ? -1 : 1;
    const int bf16 = o->cfg.state == OPT_STATE_BF16;
    const size_t es = opt_state_elem_size(&o->cfg);
    for (int k = 0; k < nb; k++)
        for (size_t i = 0; i < o->total; i++) {
            const unsigned char *q = p + ((size_t)k * o->total + i) * es;
            float x;
            if (bf16) {
                uint16_t h;
                memcpy(&h, q, 2);
                x = kn_bf16_to_f32(h);
            } else {
                memcpy(&x, q, 4);
            }
            if (!isfinite(x) || (k == second && x < 0.0f)) {
                *bad = (size_t)(q - p);
                return 0;
            }
        }
    return 1;
}

AmoStatus opt_load(Opt *o, const char *path, uint64_t tag, char *err, size_t errlen)
{
    if (!o || !path)
        return amo_err(AMO_EINVAL, err, errlen, "opt_load: NULL optimizer or path");
    if (err && errlen)
        err[0] = 0;
    unsigned char *d;
    size_t len;
    const AmoStatus rs = amo_read_file(path, &d, &len, err, errlen);
    if (rs != AMO_OK)
        return rs;
    /* The header this optimizer would write: the file's must match it
     * field by field, except the three counters at offset 24. */
    AmoBuf want = { 0 };
    put_header(&want, o, tag);
    AmoStatus st = AMO_EFORMAT;
    const size_t sb = o->total * opt_state_elem_size(&o->cfg);
    const int nb = opt_state_buffers(&o->cfg);
    const size_t expect = want.len + (size_t)nb * sb + 8;
    if (want.oom) {
        st = AMO_ENOMEM;
        goto out;
    }
    if (len < 16 || memcmp(d, STATE_MAGIC, 8)) {
        amo_err(AMO_EFORMAT, err, errlen, "%s: not an amo state file (bad magic at offset 0)",
                path);
        goto out;
    }
    uint32_t ver;
    memcpy(&ver, d + 8, 4);
    if (ver != STATE_VERSION) {
        amo_err(AMO_EFORMAT, err, errlen, "%s: format version %u at offset 8, this build reads %u",
                path, ver, STATE_VERSION);
        goto out;
    }
    if (len < 8 + 16) {
        amo_err(AMO_EFORMAT, err, errlen, "%s: truncated at offset %zu", path, len);
        goto out;
    }
    uint64_t stored, sum;
    memcpy(&stored, d + len - 8, 8);
    sum = amo_fnv1a64(d, len - 8);
    if (len != expect) {
        /* Name the first field that differs if the header is readable, else
         * the size. */
        amo_err(AMO_EFORMAT, err, errlen, "%s: %zu bytes, expected %zu for this optimizer (%s)",
                path, len, expect, len < expect ? "truncated" : "trailing data or other sizes");
    } else if (stored != sum) {
        amo_err(AMO_EFORMAT, err, errlen,
                "%s: checksum mismatch (stored %016llx, computed %016llx): corrupted", path,
                (unsigned long long)stored, (unsigned long long)sum);
        goto out;
    }
    /* The tag, then the hyperparameters and sizes, naming the first mismatch. */
    uint64_t ftag;
    memcpy(&ftag, d + 16, 8);
    if (ftag != tag) {
        amo_err(AMO_EFORMAT, err, errlen,
                "%s: tag %016llx at offset 16, expected %016llx (the state of another run)", path,
                (unsigned long long)ftag, (unsigned long long)tag);
        goto out;
    }
    size_t off = 48;
    for (size_t i = 0; i < NFIELDS; i++) {
        const size_t fs = field_size(&hyper_fields[i]);
        if (off + fs > len || off + fs > want.len)
            goto out;
        if (memcmp(d + off, want.p + off, fs)) {
            amo_err(AMO_EFORMAT, err, errlen,
                    "%s: %s differs at offset %zu (file and optimizer must match)", path,
                    hyper_fields[i].name, off);
            goto out;
        }
        off += fs;
    }
    if (off + 4 <= len && memcmp(d + off, want.p + off, 4)) {
        amo_err(AMO_EFORMAT, err, errlen, "%s: tensor count differs at offset %zu", path, off);
        goto out;
    }
    off += 4;
    for (int i = 0; i < o->count; i++, off += 8)
        if (off + 8 <= len && memcmp(d + off, want.p + off, 8)) {
            uint64_t fn;
            memcpy(&fn, d + off, 8);
            amo_err(AMO_EFORMAT, err, errlen,
                    "%s: tensor %d has %llu elements in the file, %zu here (offset %zu)", path, i,
                    (unsigned long long)fn, o->t[i].n, off);
            goto out;
        }
    if (len != expect || memcmp(d + off, want.p + off, want.len - off))
        goto out; /* message already set, or buffer layout differs */
    /* A checksum proves no accident, not sense: every value is checked. */
    uint64_t steps, skipped, clipped;
    memcpy(&steps, d + 24, 8);
    memcpy(&skipped, d + 32, 8);
    memcpy(&clipped, d + 40, 8);
    if (steps > (1ull << 62) || skipped > (1ull << 62) || clipped > steps) {
        amo_err(AMO_EFORMAT, err, errlen,
                "%s: counters at offset 24 out of range (steps %llu, skipped %llu, clipped %llu)",
                path, (unsigned long long)steps, (unsigned long long)skipped,
                (unsigned long long)clipped);
        goto out;
    }
    size_t bad;
    if (!moments_ok(o, d + want.len, &bad)) {
        amo_err(AMO_EFORMAT, err, errlen,
                "%s: moment at offset %zu is not finite or a second moment is negative", path,
                want.len + bad);
        goto out;
    }
    o->steps = steps;
    o->skipped = skipped;
    o->clipped = clipped;
    if (o->s0)
        memcpy(o->s0, d + want.len, sb);
    if (o->s1)
        memcpy(o->s1, d + want.len + sb, sb);
    st = AMO_OK;
out:
    if (st == AMO_EFORMAT && err && errlen && !err[0])
        amo_err(AMO_EFORMAT, err, errlen, "%s: state layout differs from this optimizer", path);
    amo_buf_free(&want);
    free(d);
    return st;
}
