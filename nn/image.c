/* Image files to network inputs (nn/image.h): decoding (libjpeg-turbo,
 * libpng), torchvision's crop boxes and PIL's resampling. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/file.h"
#include "common/rng.h"
#include "nn/image.h"
#include "nn/image_config.h" /* AMO_HAVE_TURBOJPEG, AMO_HAVE_PNG (nn/meson.build) */

#if AMO_HAVE_TURBOJPEG
#include <turbojpeg.h>
#endif
#if AMO_HAVE_PNG
#include <png.h>
#endif

/* Larger images are refused rather than allocated: 2^28 pixels is 20 times
 * the largest ImageNet image's and 768 MB decoded. */
#define IMG_MAX_PIXELS (1u << 28)

NnImageTf nn_image_tf_default(int train)
{
    /* github.com/pytorch/examples imagenet/main.py */
    return (NnImageTf){ .train = train, .size = 224, .resize = 256, .scale_lo = 0.08,
                        .scale_hi = 1.0, .ratio_lo = 3.0 / 4.0, .ratio_hi = 4.0 / 3.0,
                        .flip = train, .reduce = train, .mean = { 0.485f, 0.456f, 0.406f },
                        .std = { 0.229f, 0.224f, 0.225f } };
}

/* ---- boxes --------------------------------------------------------------------- */

uint64_t nn_image_key(uint64_t seed, uint64_t epoch, uint64_t index)
{
    return amo_rng_at(amo_mix64(seed ^ 0x1a6e5eedull) ^ amo_mix64(epoch + 1), index);
}

/* Python's round(): halves to even (the default rounding mode). */
static int py_round(double x) { return (int)nearbyint(x); }

/* torchvision.transforms.RandomResizedCrop.get_params, the same draws in
 * the same order (uniform area, uniform log-ratio; randint top, left). */
static NnBox random_resized(const NnImageTf *tf, int width, int height, AmoRng *r)
{
    const double area = (double)width * height;
    const double lr0 = log(tf->ratio_lo), lr1 = log(tf->ratio_hi);
    for (int t = 0; t < 10; t++) {
        const double target = area * (tf->scale_lo + (tf->scale_hi - tf->scale_lo) * amo_rng_uniform(r));
        const double ar = exp(lr0 + (lr1 - lr0) * amo_rng_uniform(r));
        const int w = py_round(sqrt(target * ar)), h = py_round(sqrt(target / ar));
        if (0 < w && w <= width && 0 < h && h <= height) {
            const int i = (int)amo_rng_below(r, (uint64_t)(height - h + 1));
            const int j = (int)amo_rng_below(r, (uint64_t)(width - w + 1));
            return (NnBox){ j, i, w, h, 0 };
        }
    }
    const double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < tf->ratio_lo)
        h = py_round(w / tf->ratio_lo);
    else if (in_ratio > tf->ratio_hi)
        w = py_round(h * tf->ratio_hi);
    return (NnBox){ (width - w) / 2, (height - h) / 2, w, h, 0 };
}

/* Resize(resize): the shorter side to `resize`, the longer int(resize *
 * long / short), as torchvision's _compute_resized_output_size. */
static void resized_dims(const NnImageTf *tf, int w, int h, int *nw, int *nh)
{
    if (w <= h) {
        *nw = tf->resize;
        *nh = (int)((double)tf->resize * h / w);
    } else {
        *nh = tf->resize;
        *nw = (int)((double)tf->resize * w / h);
    }
}

NnBox nn_image_box(const NnImageTf *tf, int w, int h, uint64_t key)
{
    if (tf->train) {
        AmoRng r = amo_rng(key);
        NnBox b = random_resized(tf, w, h, &r);
        b.flip = tf->flip && amo_rng_uniform(&r) < 0.5;
        return b;
    }
    int nw, nh;
    resized_dims(tf, w, h, &nw, &nh);
    /* CenterCrop: int(round((side - size) / 2)) in the resized image */
    const int top = py_round((nh - tf->size) / 2.0), left = py_round((nw - tf->size) / 2.0);
    const double sx = (double)w / nw, sy = (double)h / nh;
    return (NnBox){ left * sx, top * sy, tf->size * sx, tf->size * sy, 0 };
}

/* ---- PIL's resampling (Pillow src/libImaging/Resample.c) ------------------------- */

/* One axis of the resampling: the source region [off, off + len) of the
 * decoded image that the filter may read (a crop is an image of its own to
 * PIL), the box [in0, in1) inside it that maps onto out_size outputs, and
 * the first of the `size` outputs kept (CenterCrop after Resize). */
typedef struct Axis { int off, len; double in0, in1; int out_size, first; } Axis;

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear(double x)
{
    x = x < 0 ? -x : x;
    return x < 1 ? 1 - x : 0;
}

/* precompute_coeffs + normalize_coeffs_8bpc for outputs first .. first +
 * count: xmin[k] (absolute), taps[k], and k x ksize fixed-point weights. */
static int axis_coeffs(const Axis *a, int count, int *xmin, int *taps, int32_t *kk, int ksize)
{
    const double scale = (a->in1 - a->in0) / a->out_size;
    const double fscale = scale < 1 ? 1 : scale, support = fscale, ss = 1 / fscale;
    for (int o = 0; o < count; o++) {
        const double center = a->in0 + (a->first + o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = (hi > a->len ? a->len : hi) - lo;
        if (hi > ksize)
            return -1;
        double sum = 0; /* PIL normalises the weights to sum 1 before rounding them */
        for (int x = 0; x < hi; x++)
            sum += bilinear((x + lo - center + 0.5) * ss);
        for (int x = 0; x < ksize; x++) {
            const double wx = x < hi ? bilinear((x + lo - center + 0.5) * ss) : 0;
            const double v = sum != 0 ? wx / sum : wx;
            kk[o * ksize + x] = (int32_t)(v * (1 << PRECISION_BITS) + (v < 0 ? -0.5 : 0.5));
        }
        xmin[o] = a->off + lo;
        taps[o] = hi > 0 ? hi : 0;
    }
    return 0;
}

static int axis_ksize(const Axis *a)
{
    const double scale = (a->in1 - a->in0) / a->out_size;
    return (int)ceil(scale < 1 ? 1 : scale) * 2 + 1;
}

static uint8_t clip8(int64_t ss)
{
    const int64_t v = ss >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Scratch for one resampling, grown as needed. */
typedef struct Scratch { void *p; size_t cap; } Scratch;

static void *scratch(Scratch *s, size_t n)
{
    if (n > s->cap) {
        void *q = realloc(s->p, n);
        if (!q)
            return NULL;
        s->p = q;
        s->cap = n;
    }
    return s->p;
}

/* Horizontal pass over the rows the vertical pass reads, then the
 * vertical pass; 8-bit rounding between them as PIL does.  dst: (3, size,
 * size) in 0..255, columns mirrored if flip. */
static AmoStatus resample(float *dst, int size, const uint8_t *rgb, int w, const Axis *ax,
                          const Axis *ay, int flip, Scratch *sc)
{
    const int kx = axis_ksize(ax), ky = axis_ksize(ay);
    const size_t nint = (size_t)size * 4, nk = (size_t)size * (size_t)(kx + ky);
    int *xmin = scratch(sc, (nint + nk) * sizeof(int32_t));
    if (!xmin)
        return AMO_ENOMEM;
    int *xtaps = xmin + size, *ymin = xtaps + size, *ytaps = ymin + size;
    int32_t *kh = (int32_t *)(ytaps + size), *kv = kh + (size_t)size * kx;
    if (axis_coeffs(ax, size, xmin, xtaps, kh, kx) || axis_coeffs(ay, size, ymin, ytaps, kv, ky))
        return AMO_EINVAL;
    const int y_first = ymin[0], y_last = ymin[size - 1] + ytaps[size - 1];
    const int rows = y_last > y_first ? y_last - y_first : 0;
    const size_t head = (nint + nk) * sizeof(int32_t);
    uint8_t *base = scratch(sc, head + (size_t)rows * size * 3);
    if (!base)
        return AMO_ENOMEM;
    /* the coefficients moved with the buffer */
    xmin = (int *)base;
    xtaps = xmin + size, ymin = xtaps + size, ytaps = ymin + size;
    kh = (int32_t *)(ytaps + size), kv = kh + (size_t)size * kx;
    uint8_t *tmp = base + head; /* (rows, size, 3) */
    for (int r = 0; r < rows; r++) {
        const uint8_t *src = rgb + (size_t)(y_first + r) * w * 3;
        for (int o = 0; o < size; o++) {
            int64_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            const int32_t *k = kh + (size_t)o * kx;
            const uint8_t *p = src + (size_t)xmin[o] * 3;
            for (int t = 0; t < xtaps[o]; t++) {
                s0 += (int64_t)p[3 * t] * k[t];
                s1 += (int64_t)p[3 * t + 1] * k[t];
                s2 += (int64_t)p[3 * t + 2] * k[t];
            }
            uint8_t *q = tmp + ((size_t)r * size + o) * 3;
            q[0] = clip8(s0);
            q[1] = clip8(s1);
            q[2] = clip8(s2);
        }
    }
    const size_t plane = (size_t)size * size;
    for (int o = 0; o < size; o++) {
        const int32_t *k = kv + (size_t)o * ky;
        for (int x = 0; x < size; x++) {
            int64_t s[3] = { 1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                             1 << (PRECISION_BITS - 1) };
            for (int t = 0; t < ytaps[o]; t++) {
                const uint8_t *p = tmp + ((size_t)(ymin[o] - y_first + t) * size + x) * 3;
                for (int c = 0; c < 3; c++)
                    s[c] += (int64_t)p[c] * k[t];
            }
            const int xo = flip ? size - 1 - x : x;
            for (int c = 0; c < 3; c++)
                dst[c * plane + (size_t)o * size + xo] = clip8(s[c]);
        }
    }
    return AMO_OK;
}

/* ---- decoding ------------------------------------------------------------------ */

struct NnImageCtx {
#if AMO_HAVE_TURBOJPEG
    tjhandle tj;
#endif
    Scratch pix;      /* decoded RGB (or CMYK before conversion) */
    Scratch sc;       /* resampling */
};

int nn_image_supported(NnImageKind kind)
{
    return (kind == NN_IMAGE_JPEG && AMO_HAVE_TURBOJPEG) || (kind == NN_IMAGE_PNG && AMO_HAVE_PNG);
}

NnImageKind nn_image_kind(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return NN_IMAGE_JPEG;
    if (len >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return NN_IMAGE_PNG;
    return NN_IMAGE_UNKNOWN;
}

AmoStatus nn_image_ctx_create(NnImageCtx **out, char *err, size_t errlen)
{
    NnImageCtx *c = calloc(1, sizeof(*c));
    if (!c)
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for an image decoder");
#if AMO_HAVE_TURBOJPEG
    if (!(c->tj = tjInitDecompress())) {
        free(c);
        return amo_err(AMO_ENOMEM, err, errlen, "tjInitDecompress: %s", tjGetErrorStr2(NULL));
    }
#endif
    *out = c;
    return AMO_OK;
}

void nn_image_ctx_destroy(NnImageCtx *c)
{
    if (!c)
        return;
#if AMO_HAVE_TURBOJPEG
    tjDestroy(c->tj);
#endif
    free(c->pix.p);
    free(c->sc.p);
    free(c);
}

static AmoStatus check_dims(const char *name, int w, int h, char *err, size_t errlen)
{
    if (w < 1 || h < 1 || (uint64_t)w * (uint64_t)h > IMG_MAX_PIXELS)
        return amo_err(AMO_EFORMAT, err, errlen,
                       "%s: %d x %d pixels: each side must be at least 1 and the image at "
                       "most %u pixels", name, w, h, IMG_MAX_PIXELS);
    return AMO_OK;
}

#if AMO_HAVE_TURBOJPEG
/* PIL's convert("RGB") of a CMYK JPEG: it reads Adobe's inverted CMYK
 * ("CMYK;I"), so from the stored values R = C K / 255 with PIL's rounding
 * (MULDIV255, Pillow src/libImaging/Convert.c cmyk2rgb). */
static void cmyk_to_rgb(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned k = p[4 * i + 3];
        for (int c = 0; c < 3; c++) {
            const unsigned t = p[4 * i + c] * k + 128;
            p[3 * i + c] = (uint8_t)(((t >> 8) + t) >> 8);
        }
    }
}

/* libturbojpeg 2.1 leaves a handle whose header read failed unable to read
 * the next valid file ("Bogus marker length"): a new handle after any
 * failure (tests/nn/test_folder.c survives_mutated_files). */
static AmoStatus jpeg_failed(NnImageCtx *c, AmoStatus st)
{
    tjDestroy(c->tj);
    c->tj = tjInitDecompress();
    return st;
}

static AmoStatus decode_jpeg(NnImageCtx *c, const char *name, const void *buf, size_t len,
                             int num, int *w, int *h, char *err, size_t errlen)
{
    if (!c->tj && !(c->tj = tjInitDecompress()))
        return amo_err(AMO_ENOMEM, err, errlen, "%s: tjInitDecompress: %s", name,
                       tjGetErrorStr2(NULL));
    /* A file cut inside its header can pass tjDecompressHeader3 (libjpeg
     * makes up an end marker) without sizes: hence the zeros. */
    int W = 0, H = 0, samp, cs;
    if (len > ULONG_MAX || tjDecompressHeader3(c->tj, buf, (unsigned long)len, &W, &H, &samp, &cs))
        return jpeg_failed(c, amo_err(AMO_EFORMAT, err, errlen, "%s: not a readable JPEG: %s",
                                      name, tjGetErrorStr2(c->tj)));
    if (W < 1 || H < 1)
        return jpeg_failed(c, amo_err(AMO_EFORMAT, err, errlen,
                                      "%s: not a readable JPEG: no frame header in its %zu bytes",
                                      name, len));
    AmoStatus st = check_dims(name, W, H, err, errlen);
    if (st != AMO_OK)
        return st;
    const tjscalingfactor sf = { num, 8 };
    *w = TJSCALED(W, sf);
    *h = TJSCALED(H, sf);
    const int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *p = scratch(&c->pix, (size_t)*w * *h * (cmyk ? 4 : 3));
    if (!p)
        return amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory for %d x %d pixels", name, *w, *h);
    /* A warning (a truncated file, corrupt data) is an error too: PIL
     * refuses truncated images unless told otherwise, and so do we. */
    if (tjDecompress2(c->tj, buf, (unsigned long)len, p, *w, 0, *h, cmyk ? TJPF_CMYK : TJPF_RGB,
                      TJFLAG_STOPONWARNING))
        return jpeg_failed(c, amo_err(AMO_EFORMAT, err, errlen, "%s: JPEG data: %s", name,
                                      tjGetErrorStr2(c->tj)));
    if (cmyk)
        cmyk_to_rgb(p, (size_t)*w * *h);
    return AMO_OK;
}
#endif

#if AMO_HAVE_PNG
/* libpng's simplified API: any PNG (palette, gray, 16 bits) as 8-bit RGB.
 * An image with alpha is read as RGBA and the alpha dropped, as PIL's
 * convert("RGB") does (libpng would composite it on black). */
static AmoStatus decode_png(NnImageCtx *c, const char *name, const void *buf, size_t len, int *w,
                            int *h, char *err, size_t errlen)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, buf, len))
        return amo_err(AMO_EFORMAT, err, errlen, "%s: not a readable PNG: %s", name, im.message);
    AmoStatus st = check_dims(name, (int)im.width, (int)im.height, err, errlen);
    if (st != AMO_OK || im.width > INT_MAX || im.height > INT_MAX) {
        png_image_free(&im);
        return st != AMO_OK ? st : amo_err(AMO_EFORMAT, err, errlen, "%s: too large", name);
    }
    const int alpha = (im.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    im.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
    uint8_t *p = scratch(&c->pix, PNG_IMAGE_SIZE(im));
    if (!p) {
        png_image_free(&im);
        return amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory", name);
    }
    if (!png_image_finish_read(&im, NULL, p, 0, NULL))
        return amo_err(AMO_EFORMAT, err, errlen, "%s: PNG data: %s", name, im.message);
    for (size_t i = 0; alpha && i < (size_t)im.width * im.height; i++)
        memmove(p + 3 * i, p + 4 * i, 3);
    *w = (int)im.width;
    *h = (int)im.height;
    return AMO_OK;
}
#endif

AmoStatus nn_image_decode(NnImageCtx *c, const char *name, const void *buf, size_t len,
                          int scale_num, const uint8_t **rgb, int *w, int *h, char *err,
                          size_t errlen)
{
    const NnImageKind kind = nn_image_kind(buf, len);
    const unsigned char *b = buf;
    AmoStatus st = AMO_EUNSUPPORTED;
    if (kind == NN_IMAGE_UNKNOWN)
        return amo_err(AMO_EFORMAT, err, errlen,
                       "%s: not a JPEG or PNG (%zu bytes, starting %02x %02x %02x %02x)", name,
                       len, len > 0 ? b[0] : 0, len > 1 ? b[1] : 0, len > 2 ? b[2] : 0,
                       len > 3 ? b[3] : 0);
    if (!nn_image_supported(kind))
        return amo_err(AMO_EUNSUPPORTED, err, errlen, "%s: a %s, and this build has no %s", name,
                       kind == NN_IMAGE_JPEG ? "JPEG" : "PNG",
                       kind == NN_IMAGE_JPEG ? "libturbojpeg (built without libturbojpeg)"
                                             : "libpng (built without libpng)");
    if (scale_num < 1 || scale_num > 8)
        return amo_err(AMO_EINVAL, err, errlen, "%s: scale %d/8: must be 1/8 .. 8/8", name,
                       scale_num);
#if AMO_HAVE_TURBOJPEG
    if (kind == NN_IMAGE_JPEG)
        st = decode_jpeg(c, name, buf, len, scale_num, w, h, err, errlen);
#endif
#if AMO_HAVE_PNG
    if (kind == NN_IMAGE_PNG)
        st = decode_png(c, name, buf, len, w, h, err, errlen);
#endif
    *rgb = c->pix.p;
    return st;
}

/* ---- the transform ---------------------------------------------------------------- */

#if AMO_HAVE_TURBOJPEG
/* The smallest scale n/8 at which the box still has `need` pixels on its
 * shorter side (need: the output side, or Resize's): then the resampling
 * still shrinks, and the scaled IDCT did the rest of the shrinking. */
static int jpeg_scale(double bw, double bh, int need)
{
    const double side = bw < bh ? bw : bh;
    for (int n = 1; n < 8; n++)
        if (side * n / 8 >= need)
            return n;
    return 8;
}

static int jpeg_dims(NnImageCtx *c, const void *buf, size_t len, int *w, int *h)
{
    int samp, cs;
    *w = *h = 0;
    if (c->tj && !tjDecompressHeader3(c->tj, buf, (unsigned long)len, w, h, &samp, &cs))
        return 0;
    jpeg_failed(c, AMO_EFORMAT);
    return -1;
}
#endif

AmoStatus nn_image_load_mem(NnImageCtx *c, const char *name, const void *buf, size_t len,
                            const NnImageTf *tf, uint64_t key, float *dst, NnBox *box_out,
                            char *err, size_t errlen)
{
    if (tf->size < 1 || (!tf->train && tf->resize < tf->size))
        return amo_err(AMO_EINVAL, err, errlen, "image transform: size %d, resize %d", tf->size,
                       tf->resize);
    int scale = 8, W = 0, H = 0;
    NnBox box = { 0 };
#if AMO_HAVE_TURBOJPEG
    /* the box from the header alone, so that the scale can follow from it */
    if (nn_image_kind(buf, len) == NN_IMAGE_JPEG && !jpeg_dims(c, buf, len, &W, &H) &&
        check_dims(name, W, H, NULL, 0) == AMO_OK) {
        box = nn_image_box(tf, W, H, key);
        if (tf->reduce)
            scale = tf->train ? jpeg_scale(box.w, box.h, tf->size) : jpeg_scale(W, H, tf->resize);
    }
#endif
    const uint8_t *rgb;
    int w, h;
    AmoStatus st = nn_image_decode(c, name, buf, len, scale, &rgb, &w, &h, err, errlen);
    if (st != AMO_OK)
        return st;
    if (scale == 8) {
        W = w;
        H = h;
        box = nn_image_box(tf, W, H, key);
    }
    /* The box in the decoded image's pixels. */
    const double sx = (double)w / W, sy = (double)h / H;
    Axis ax, ay;
    if (tf->train) {
        const int x0 = (int)floor(box.x0 * sx), y0 = (int)floor(box.y0 * sy);
        int x1 = (int)ceil((box.x0 + box.w) * sx), y1 = (int)ceil((box.y0 + box.h) * sy);
        x1 = x1 > w ? w : x1;
        y1 = y1 > h ? h : y1;
        ax = (Axis){ x0, x1 - x0, box.x0 * sx - x0, box.x0 * sx - x0 + box.w * sx, tf->size, 0 };
        ay = (Axis){ y0, y1 - y0, box.y0 * sy - y0, box.y0 * sy - y0 + box.h * sy, tf->size, 0 };
    } else {
        int nw, nh;
        resized_dims(tf, W, H, &nw, &nh);
        ax = (Axis){ 0, w, 0, w, nw, py_round((nw - tf->size) / 2.0) };
        ay = (Axis){ 0, h, 0, h, nh, py_round((nh - tf->size) / 2.0) };
    }
    st = resample(dst, tf->size, rgb, w, &ax, &ay, box.flip, &c->sc);
    if (st != AMO_OK)
        return amo_err(st, err, errlen, "%s: resampling %d x %d pixels to %d: %s", name, w, h,
                       tf->size, amo_status_str(st));
    const size_t plane = (size_t)tf->size * tf->size;
    for (int ch = 0; ch < 3; ch++) {
        const float m = tf->mean[ch], s = tf->std[ch];
        for (size_t i = 0; i < plane; i++) /* ToTensor, then Normalize */
            dst[ch * plane + i] = (dst[ch * plane + i] / 255.0f - m) / s;
    }
    if (box_out)
        *box_out = box;
    return AMO_OK;
}

AmoStatus nn_image_load(NnImageCtx *c, const char *path, const NnImageTf *tf, uint64_t key,
                        float *dst, NnBox *box, char *err, size_t errlen)
{
    unsigned char *buf;
    size_t len;
    AmoStatus st = amo_read_file(path, &buf, &len, err, errlen);
    if (st != AMO_OK)
        return st;
    st = nn_image_load_mem(c, path, buf, len, tf, key, dst, box, err, errlen);
    free(buf);
    return st;
}
