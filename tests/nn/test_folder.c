/* nn/folder.c, nn/image.c and nn/loader.c on a small ImageFolder tree this
 * test writes with libturbojpeg (and libpng): the class mapping and the
 * files taken or skipped (other names, a FIFO, a dangling symlink, a
 * symlink loop, an empty class); RandomResizedCrop's box against its
 * formula; the evaluation and training transforms' pixels against a plain
 * reference written here (PIL's bilinear resampling, full decode); the
 * reduced-scale decode close to it; grayscale, CMYK, progressive and PNG
 * decoding; truncated, non-image and missing files refused by name, and
 * mutated files given a status, never a crash; the
 * loader's batches identical across thread counts and after a seek. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "common/rng.h"
#include "nn/folder.h"
#include "nn/image.h"
#include "nn/image_config.h"
#include "nn/loader.h"

#include "tests/tmpdir.h"

#if AMO_HAVE_PNG
#include <png.h>
#endif

/* ---- writing the tree -------------------------------------------------------- */

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static void write_raw(const char *name, const void *p, size_t n)
{
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void mkdir_in(const char *name)
{
    char path[512];
    path_in(path, sizeof path, name);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* A smooth pattern with detail in every channel, different per image. */
static uint8_t *pattern(int w, int h, int ch, int seed)
{
    uint8_t *p = malloc((size_t)w * h * ch);
    assert_non_null(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < ch; c++) {
                const double v = 128 + 60 * sin((x + 3 * seed) * (0.05 + 0.02 * c)) +
                                 50 * cos((y - seed) * (0.07 + 0.01 * c)) + ((x ^ y) & 15);
                p[((size_t)y * w + x) * ch + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return p;
}

/* A JPEG of pixels (pf: TJPF_RGB, TJPF_GRAY or TJPF_CMYK) into *out. */
static unsigned char *jpeg_of(const uint8_t *px, int w, int h, int pf, int flags,
                              unsigned long *len)
{
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *buf = NULL;
    *len = 0;
    const int samp = pf == TJPF_GRAY ? TJSAMP_GRAY : pf == TJPF_CMYK ? TJSAMP_444 : TJSAMP_420;
    assert_int_equal(tjCompress2(tj, px, w, 0, h, pf, &buf, len, samp, 95, flags), 0);
    tjDestroy(tj);
    return buf;
}

static void write_jpeg(const char *name, int w, int h, int pf, int flags, int seed)
{
    const int ch = pf == TJPF_GRAY ? 1 : pf == TJPF_CMYK ? 4 : 3;
    uint8_t *px = pattern(w, h, ch, seed);
    unsigned long len;
    unsigned char *j = jpeg_of(px, w, h, pf, flags, &len);
    write_raw(name, j, len);
    tjFree(j);
    free(px);
}

/* The tree: 3 classes (sorted bytewise: "Zeta" < "ant" < "bee"), odd sizes,
 * a subfolder, files that are not images. */
static void make_tree(const char *root)
{
    char d[256];
    mkdir_in(root);
    static const char *const cls[] = { "bee", "ant", "Zeta" };
    for (int c = 0; c < 3; c++) {
        snprintf(d, sizeof d, "%s/%s", root, cls[c]);
        mkdir_in(d);
        for (int i = 0; i < 3; i++) {
            char f[300];
            snprintf(f, sizeof f, "%s/img%d.JPEG", d, 2 - i);
            write_jpeg(f, 37 + 29 * i + 11 * c, 53 + 17 * i, TJPF_RGB, 0, 7 * c + i);
        }
    }
    snprintf(d, sizeof d, "%s/ant/sub", root);
    mkdir_in(d);
    snprintf(d, sizeof d, "%s/ant/sub/a.jpg", root);
    write_jpeg(d, 64, 48, TJPF_RGB, TJFLAG_PROGRESSIVE, 99);
    snprintf(d, sizeof d, "%s/ant/notes.txt", root);
    write_raw(d, "hello", 5);
    snprintf(d, sizeof d, "%s/README", root); /* a file beside the classes */
    write_raw(d, "x", 1);
}

static int setup(void **state)
{
    (void)state;
    return tmpdir_make("folder");
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove();
}

/* ---- scanning ---------------------------------------------------------------- */

static void scan_maps_classes_as_torchvision(void **state)
{
    (void)state;
    make_tree("t1");
    char root[512], p[600];
    path_in(root, sizeof root, "t1");
    /* skipped: a FIFO and a dangling symlink with image names, a loop */
    snprintf(p, sizeof p, "%s/bee/fifo.jpg", root);
    assert_int_equal(mkfifo(p, 0644), 0);
    snprintf(p, sizeof p, "%s/bee/gone.jpg", root);
    assert_int_equal(symlink("/nonexistent/x.jpg", p), 0);
    snprintf(p, sizeof p, "%s/bee/loop", root);
    assert_int_equal(symlink("..", p), 0);
    NnFolder f;
    char err[512] = "";
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_OK);
    assert_int_equal(f.classes, 3);
    assert_string_equal(f.class_names[0], "Zeta");
    assert_string_equal(f.class_names[1], "ant");
    assert_string_equal(f.class_names[2], "bee");
    assert_int_equal(f.n, 10);
    /* sorted(os.walk): a folder's files, then its subfolders' */
    static const char *const want[] = { "Zeta/img0.JPEG", "Zeta/img1.JPEG", "Zeta/img2.JPEG",
                                         "ant/img0.JPEG",  "ant/img1.JPEG",  "ant/img2.JPEG",
                                         "ant/sub/a.jpg",  "bee/img0.JPEG",  "bee/img1.JPEG",
                                         "bee/img2.JPEG" };
    static const int labels[] = { 0, 0, 0, 1, 1, 1, 1, 2, 2, 2 };
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "%s/%s", root, want[i]);
        assert_string_equal(f.paths[i], p);
        assert_int_equal(f.y[i], labels[i]);
    }
    assert_int_equal(f.other, 2);       /* notes.txt, README */
    assert_int_equal(f.not_regular, 2); /* the FIFO, the dangling symlink */
    assert_int_equal(f.loops, 1);
    /* val/ read with train's classes: a class of its own is refused */
    NnFolder v;
    char *const names[] = { "Zeta", "ant" };
    assert_int_equal(nn_folder_scan(&v, root, names, 2, err, sizeof err), AMO_EFORMAT);
    assert_non_null(strstr(err, "/bee: a class the training set does not have"));
    nn_folder_free(&f);
}

static void scan_refuses_empty_class_and_missing_dir(void **state)
{
    (void)state;
    mkdir_in("t2");
    mkdir_in("t2/a");
    mkdir_in("t2/b");
    write_jpeg("t2/a/x.jpg", 20, 20, TJPF_RGB, 0, 1);
    write_raw("t2/b/x.txt", "x", 1);
    char root[512], err[512] = "";
    path_in(root, sizeof root, "t2");
    NnFolder f;
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_EFORMAT);
    assert_non_null(strstr(err, "t2/b: a class folder with no image files"));
    assert_int_equal(f.n, 0);
    path_in(root, sizeof root, "t2/none");
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_EIO);
    assert_non_null(strstr(err, "t2/none: No such file"));
    path_in(root, sizeof root, "t2/a/x.jpg");
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_EIO);
    assert_non_null(strstr(err, "x.jpg: not a directory"));
}

/* ---- boxes ------------------------------------------------------------------------ */

/* RandomResizedCrop.get_params written out from torchvision's source with
 * the key's draws: uniform area fraction, uniform log-ratio, two randints,
 * then the flip's uniform. */
static NnBox formula_box(int W, int H, uint64_t key)
{
    AmoRng r = amo_rng(key);
    for (int t = 0; t < 10; t++) {
        const double area = W * (double)H * (0.08 + 0.92 * amo_rng_uniform(&r));
        const double ar = exp(log(0.75) + (log(4.0 / 3) - log(0.75)) * amo_rng_uniform(&r));
        const int w = (int)nearbyint(sqrt(area * ar)), h = (int)nearbyint(sqrt(area / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            const int i = (int)amo_rng_below(&r, (uint64_t)(H - h + 1));
            const int j = (int)amo_rng_below(&r, (uint64_t)(W - w + 1));
            return (NnBox){ j, i, w, h, amo_rng_uniform(&r) < 0.5 };
        }
    }
    return (NnBox){ -1, -1, -1, -1, 0 }; /* the fallback: checked apart */
}

static void boxes_follow_the_formula(void **state)
{
    (void)state;
    const NnImageTf tf = nn_image_tf_default(1);
    int flips = 0, n = 0;
    for (uint64_t k = 0; k < 2000; k++) {
        const int W = 50 + (int)(k * 37 % 500), H = 40 + (int)(k * 53 % 400);
        const uint64_t key = nn_image_key(1, k % 3, k);
        const NnBox b = nn_image_box(&tf, W, H, key), f = formula_box(W, H, key);
        if (f.w < 0)
            continue;
        n++;
        assert_true(b.x0 == f.x0 && b.y0 == f.y0 && b.w == f.w && b.h == f.h);
        assert_int_equal(b.flip, f.flip);
        flips += b.flip;
        assert_true(b.x0 >= 0 && b.y0 >= 0 && b.x0 + b.w <= W && b.y0 + b.h <= H);
    }
    assert_true(n > 1000);
    assert_true(flips > n / 2 - 100 && flips < n / 2 + 100);
    /* one box by number: seed 1, epoch 0, image 0 of a 500 x 375 image */
    const NnBox b = nn_image_box(&tf, 500, 375, nn_image_key(1, 0, 0));
    const NnBox f = formula_box(500, 375, nn_image_key(1, 0, 0));
    assert_true(b.x0 == f.x0 && b.w == f.w && b.h == f.h);
    /* another epoch or image draws another box; the seed decides */
    const NnBox e1 = nn_image_box(&tf, 500, 375, nn_image_key(1, 1, 0));
    const NnBox s2 = nn_image_box(&tf, 500, 375, nn_image_key(2, 0, 0));
    assert_true(e1.w != b.w || e1.x0 != b.x0);
    assert_true(s2.w != b.w || s2.x0 != b.x0);
    /* the fallback: no crop of ratio 3/4 .. 4/3 fits a 1000 x 10 strip at
     * this scale; the centre crop of ratio 4/3 */
    NnImageTf narrow = tf;
    narrow.scale_lo = narrow.scale_hi = 1.0;
    const NnBox c = nn_image_box(&narrow, 1000, 10, 5);
    assert_true(c.h == 10 && c.w == 13 && c.x0 == (1000 - 13) / 2 && c.y0 == 0);
    /* evaluation: Resize(256) + CenterCrop(224) of 500 x 375 -> 341 x 256 */
    const NnBox ev = nn_image_box(&(NnImageTf){ .size = 224, .resize = 256 }, 500, 375, 0);
    assert_true(fabs(ev.x0 - 58 * 500.0 / 341) < 1e-9 && fabs(ev.y0 - 16 * 375.0 / 256) < 1e-9);
}

/* ---- pixels ------------------------------------------------------------------------- */

/* PIL's bilinear resampling of the box (in0x, in1x) x (in0y, in1y) of an
 * RGB image to ow x oh, every output, the plain way: a horizontal pass
 * over all rows, 8-bit rounding, a vertical pass (Pillow Resample.c). */
static uint8_t *ref_resize(const uint8_t *src, int w, int h, double in0x, double in1x,
                           double in0y, double in1y, int ow, int oh)
{
    uint8_t *tmp = malloc((size_t)h * ow * 3), *out = malloc((size_t)oh * ow * 3);
    for (int pass = 0; pass < 2; pass++) {
        const int insize = pass ? h : w, outsize = pass ? oh : ow;
        const double in0 = pass ? in0y : in0x, scale = ((pass ? in1y : in1x) - in0) / outsize;
        const double fs = scale < 1 ? 1 : scale;
        for (int o = 0; o < outsize; o++) {
            const double center = in0 + (o + 0.5) * scale;
            int lo = (int)(center - fs + 0.5), hi = (int)(center + fs + 0.5);
            lo = lo < 0 ? 0 : lo;
            hi = hi > insize ? insize : hi;
            double wsum = 0, wt[64];
            for (int x = lo; x < hi; x++) {
                const double d = fabs((x - center + 0.5) / fs);
                wsum += wt[x - lo] = d < 1 ? 1 - d : 0;
            }
            int32_t k[64];
            for (int x = lo; x < hi; x++) {
                const double v = wt[x - lo] / wsum;
                k[x - lo] = (int32_t)(v * (1 << 22) + (v < 0 ? -0.5 : 0.5));
            }
            const int lines = pass ? ow : h;
            for (int l = 0; l < lines; l++)
                for (int c = 0; c < 3; c++) {
                    int64_t s = 1 << 21;
                    for (int x = lo; x < hi; x++)
                        s += (int64_t)k[x - lo] * (pass ? tmp[((size_t)x * ow + l) * 3 + c]
                                                        : src[((size_t)l * w + x) * 3 + c]);
                    s >>= 22;
                    const uint8_t v = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
                    if (pass)
                        out[((size_t)o * ow + l) * 3 + c] = v;
                    else
                        tmp[((size_t)l * ow + o) * 3 + c] = v;
                }
        }
    }
    free(tmp);
    return out;
}

static uint8_t *decode_full(const unsigned char *j, unsigned long len, int *w, int *h)
{
    tjhandle tj = tjInitDecompress();
    int samp, cs;
    assert_int_equal(tjDecompressHeader3(tj, j, len, w, h, &samp, &cs), 0);
    uint8_t *px = malloc((size_t)*w * *h * 3);
    assert_int_equal(tjDecompress2(tj, j, len, px, *w, 0, *h, TJPF_RGB, 0), 0);
    tjDestroy(tj);
    return px;
}

/* out (oh, ow, 3) region (x0, y0) .. + size against dst (3, size, size),
 * normalised as the transform does. */
static void same_pixels(const float *dst, const uint8_t *out, int ow, int x0, int y0, int size,
                        const NnImageTf *tf, int flip)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                const int xs = flip ? size - 1 - x : x;
                const uint8_t v = out[((size_t)(y0 + y) * ow + x0 + xs) * 3 + c];
                const float want = (v / 255.0f - tf->mean[c]) / tf->std[c];
                const float got = dst[((size_t)c * size + y) * size + x];
                if (got != want)
                    fail_msg("channel %d (%d, %d): %.7g, expected %.7g (pixel %u)", c, x, y,
                             (double)got, (double)want, v);
            }
}

static void eval_transform_matches_reference(void **state)
{
    (void)state;
    static const int dims[][2] = { { 301, 233 }, { 200, 517 }, { 256, 256 }, { 97, 131 } };
    NnImageCtx *ctx;
    char err[512];
    assert_int_equal(nn_image_ctx_create(&ctx, err, sizeof err), AMO_OK);
    for (int t = 0; t < 4; t++) {
        const int W = dims[t][0], H = dims[t][1];
        uint8_t *src = pattern(W, H, 3, t);
        unsigned long len;
        unsigned char *j = jpeg_of(src, W, H, TJPF_RGB, 0, &len);
        int w, h;
        uint8_t *px = decode_full(j, len, &w, &h);
        NnImageTf tf = nn_image_tf_default(0);
        tf.reduce = 0;
        const int nw = W <= H ? 256 : (int)(256.0 * W / H), nh = W <= H ? (int)(256.0 * H / W) : 256;
        uint8_t *out = ref_resize(px, W, H, 0, W, 0, H, nw, nh);
        const int x0 = (int)nearbyint((nw - 224) / 2.0), y0 = (int)nearbyint((nh - 224) / 2.0);
        float *dst = malloc(3 * 224 * 224 * sizeof(float));
        assert_int_equal(nn_image_load_mem(ctx, "t.jpg", j, len, &tf, 0, dst, NULL, err,
                                           sizeof err), AMO_OK);
        same_pixels(dst, out, nw, x0, y0, 224, &tf, 0);
        /* training at full decode: the crop, then the resize of the crop
         * alone (torchvision's resized_crop), flipped as drawn */
        NnImageTf tr = nn_image_tf_default(1);
        tr.reduce = 0;
        for (uint64_t k = 0; k < 4; k++) {
            NnBox b;
            assert_int_equal(nn_image_load_mem(ctx, "t.jpg", j, len, &tr, k, dst, &b, err,
                                               sizeof err), AMO_OK);
            const int bx = (int)b.x0, by = (int)b.y0, bw = (int)b.w, bh = (int)b.h;
            uint8_t *crop = malloc((size_t)bw * bh * 3);
            for (int y = 0; y < bh; y++)
                memcpy(crop + (size_t)y * bw * 3, px + ((size_t)(by + y) * W + bx) * 3,
                       (size_t)bw * 3);
            uint8_t *o2 = ref_resize(crop, bw, bh, 0, bw, 0, bh, 224, 224);
            same_pixels(dst, o2, 224, 0, 0, 224, &tr, b.flip);
            free(o2);
            free(crop);
        }
        free(dst);
        free(out);
        free(px);
        tjFree(j);
        free(src);
    }
    nn_image_ctx_destroy(ctx);
}

/* Decoding at a reduced scale changes the pixels a little, not the image:
 * 1/2 of a 900 x 700 image against the full decode. */
static void reduced_scale_is_close(void **state)
{
    (void)state;
    uint8_t *src = pattern(900, 700, 3, 3);
    unsigned long len;
    unsigned char *j = jpeg_of(src, 900, 700, TJPF_RGB, 0, &len);
    NnImageCtx *ctx;
    char err[512];
    assert_int_equal(nn_image_ctx_create(&ctx, err, sizeof err), AMO_OK);
    float *a = malloc(3 * 224 * 224 * sizeof(float)), *b = malloc(3 * 224 * 224 * sizeof(float));
    for (int train = 0; train < 2; train++) {
        NnImageTf tf = nn_image_tf_default(train);
        tf.scale_lo = 0.5; /* boxes large enough to reduce */
        tf.reduce = 1;
        assert_int_equal(nn_image_load_mem(ctx, "r", j, len, &tf, 3, a, NULL, err, sizeof err),
                         AMO_OK);
        tf.reduce = 0;
        assert_int_equal(nn_image_load_mem(ctx, "r", j, len, &tf, 3, b, NULL, err, sizeof err),
                         AMO_OK);
        double mad = 0;
        int same = 1;
        for (int i = 0; i < 3 * 224 * 224; i++) {
            mad += fabs((double)a[i] - b[i]) * 0.226 * 255; /* in pixel levels */
            same &= a[i] == b[i];
        }
        mad /= 3 * 224 * 224;
        print_message("reduced-scale decode, %s: mean |difference| %.2f levels\n",
                      train ? "training" : "evaluation", mad);
        assert_false(same); /* it did decode at another scale */
        assert_true(mad < 4.0);
    }
    free(a);
    free(b);
    nn_image_ctx_destroy(ctx);
    tjFree(j);
    free(src);
}

/* Gray replicated, CMYK converted as PIL does (R = C K / 255 of the stored,
 * Adobe-inverted values), progressive decoded, PNG sniffed under a .JPEG
 * name; flat colours so that JPEG's loss stays within a few levels. */
static void decodes_gray_cmyk_progressive_png(void **state)
{
    (void)state;
    NnImageCtx *ctx;
    char err[512];
    assert_int_equal(nn_image_ctx_create(&ctx, err, sizeof err), AMO_OK);
    const uint8_t *rgb;
    int w, h;
    uint8_t flat[32 * 24 * 4];
    for (int i = 0; i < 32 * 24; i++) {
        flat[4 * i] = 200;
        flat[4 * i + 1] = 100;
        flat[4 * i + 2] = 50;
        flat[4 * i + 3] = 128;
    }
    unsigned long len;
    unsigned char *j = jpeg_of(flat, 32, 24, TJPF_CMYK, 0, &len);
    assert_int_equal(nn_image_decode(ctx, "c.jpg", j, len, 8, &rgb, &w, &h, err, sizeof err),
                     AMO_OK);
    assert_true(w == 32 && h == 24);
    const int want[3] = { 200 * 128 / 255, 100 * 128 / 255, 50 * 128 / 255 };
    for (int c = 0; c < 3; c++)
        assert_true(abs(rgb[(12 * 32 + 16) * 3 + c] - want[c]) <= 3);
    tjFree(j);
    uint8_t gray[40 * 30];
    for (int i = 0; i < 40 * 30; i++)
        gray[i] = (uint8_t)(i % 40 * 5);
    j = jpeg_of(gray, 40, 30, TJPF_GRAY, 0, &len);
    assert_int_equal(nn_image_decode(ctx, "g.jpg", j, len, 8, &rgb, &w, &h, err, sizeof err),
                     AMO_OK);
    for (int i = 0; i < 40 * 30; i++)
        assert_true(rgb[3 * i] == rgb[3 * i + 1] && rgb[3 * i] == rgb[3 * i + 2] &&
                    abs(rgb[3 * i] - gray[i]) <= 6);
    tjFree(j);
    /* progressive: the same pixels as the baseline encoding of the image */
    uint8_t *src = pattern(61, 45, 3, 5);
    unsigned long l1, l2;
    unsigned char *j1 = jpeg_of(src, 61, 45, TJPF_RGB, 0, &l1);
    unsigned char *j2 = jpeg_of(src, 61, 45, TJPF_RGB, TJFLAG_PROGRESSIVE, &l2);
    uint8_t base[61 * 45 * 3];
    assert_int_equal(nn_image_decode(ctx, "b.jpg", j1, l1, 8, &rgb, &w, &h, err, sizeof err),
                     AMO_OK);
    memcpy(base, rgb, sizeof base);
    assert_int_equal(nn_image_decode(ctx, "p.jpg", j2, l2, 8, &rgb, &w, &h, err, sizeof err),
                     AMO_OK);
    assert_memory_equal(base, rgb, sizeof base);
    tjFree(j1);
    tjFree(j2);
#if AMO_HAVE_PNG
    png_image im = { .version = PNG_IMAGE_VERSION, .width = 61, .height = 45,
                     .format = PNG_FORMAT_RGB };
    png_alloc_size_t plen = 0;
    assert_true(png_image_write_to_memory(&im, NULL, &plen, 0, src, 0, NULL));
    void *png = malloc(plen);
    assert_true(png_image_write_to_memory(&im, png, &plen, 0, src, 0, NULL));
    assert_int_equal(nn_image_decode(ctx, "n02105855_2933.JPEG", png, plen, 8, &rgb, &w, &h, err,
                                     sizeof err), AMO_OK);
    assert_true(w == 61 && h == 45);
    assert_memory_equal(rgb, src, sizeof base); /* lossless */
    free(png);
#endif
    free(src);
    nn_image_ctx_destroy(ctx);
}

static void refuses_bad_files_by_name(void **state)
{
    (void)state;
    mkdir_in("bad");
    write_jpeg("bad/ok.jpg", 50, 40, TJPF_RGB, 0, 1);
    char ok[512], path[512], err[512];
    path_in(ok, sizeof ok, "bad/ok.jpg");
    FILE *f = fopen(ok, "rb");
    unsigned char buf[1 << 15];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_raw("bad/cut.jpg", buf, n / 2);
    write_raw("bad/text.JPEG", "<html>not an image</html>", 25);
    write_raw("bad/empty.jpg", "", 0);
    buf[n / 2] ^= 0xff; /* corrupt entropy-coded data */
    write_raw("bad/noise.jpg", buf, n);
    NnImageCtx *ctx;
    assert_int_equal(nn_image_ctx_create(&ctx, err, sizeof err), AMO_OK);
    float *dst = malloc(3 * 224 * 224 * sizeof(float));
    const NnImageTf tf = nn_image_tf_default(1);
    static const struct { const char *name; AmoStatus st; const char *msg; } cases[] = {
        { "bad/cut.jpg", AMO_EFORMAT, "cut.jpg: JPEG data: " },
        { "bad/text.JPEG", AMO_EFORMAT, "text.JPEG: not a JPEG or PNG (25 bytes, starting 3c 68" },
        { "bad/empty.jpg", AMO_EFORMAT, "empty.jpg: not a JPEG or PNG (0 bytes" },
        { "bad/missing.jpg", AMO_EIO, "missing.jpg: cannot open: No such file" },
        { "bad", AMO_EIO, "bad: not a regular file (it is a directory)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        path_in(path, sizeof path, cases[i].name);
        err[0] = '\0';
        assert_int_equal(nn_image_load(ctx, path, &tf, 1, dst, NULL, err, sizeof err), cases[i].st);
        if (!strstr(err, cases[i].msg))
            fail_msg("%s: '%s' lacks '%s'", cases[i].name, err, cases[i].msg);
    }
    /* corrupt data: refused, or decoded to something (libjpeg may resync);
     * never a crash */
    path_in(path, sizeof path, "bad/noise.jpg");
    const AmoStatus st = nn_image_load(ctx, path, &tf, 1, dst, NULL, err, sizeof err);
    assert_true(st == AMO_OK || (st == AMO_EFORMAT && strstr(err, "noise.jpg")));
    assert_int_equal(nn_image_load(ctx, ok, &tf, 1, dst, NULL, err, sizeof err), AMO_OK);
    free(dst);
    nn_image_ctx_destroy(ctx);
}

/* Mutated JPEGs (a baseline and a progressive one, a PNG): every cut and
 * 400 random byte changes each give a status, OK or an error naming the
 * file, never a crash (valgrind or ASan see the reads). */
static void survives_mutated_files(void **state)
{
    (void)state;
    uint8_t *src = pattern(70, 50, 3, 8);
    unsigned long lens[3];
    unsigned char *files[3];
    files[0] = jpeg_of(src, 70, 50, TJPF_RGB, 0, &lens[0]);
    files[1] = jpeg_of(src, 70, 50, TJPF_RGB, TJFLAG_PROGRESSIVE, &lens[1]);
    files[2] = NULL;
    lens[2] = 0;
#if AMO_HAVE_PNG
    png_image im = { .version = PNG_IMAGE_VERSION, .width = 70, .height = 50,
                     .format = PNG_FORMAT_RGB };
    png_alloc_size_t plen = 0;
    assert_true(png_image_write_to_memory(&im, NULL, &plen, 0, src, 0, NULL));
    files[2] = malloc(plen);
    assert_true(png_image_write_to_memory(&im, files[2], &plen, 0, src, 0, NULL));
    lens[2] = plen;
#endif
    NnImageCtx *ctx;
    char err[512];
    assert_int_equal(nn_image_ctx_create(&ctx, err, sizeof err), AMO_OK);
    float *dst = malloc(3 * 32 * 32 * sizeof(float));
    NnImageTf tf = nn_image_tf_default(1);
    tf.size = 32;
    AmoRng r = amo_rng(42);
    int failed = 0, total = 0;
    for (int f = 0; f < 3; f++) {
        if (!files[f])
            continue;
        if (nn_image_load_mem(ctx, "m.jpg", files[f], lens[f], &tf, 0, dst, NULL, err,
                              sizeof err) != AMO_OK)
            fail_msg("file %d: %s", f, err);
        unsigned char *m = malloc(lens[f]);
        for (int t = 0; t < 400 + (int)lens[f] / 16; t++, total++) {
            memcpy(m, files[f], lens[f]);
            size_t len = lens[f];
            if (t < (int)lens[f] / 16) {
                len = (size_t)t * 16; /* every cut */
            } else {
                for (int k = 0; k < 1 + t % 4; k++)
                    m[amo_rng_below(&r, len)] = (unsigned char)amo_rng_u64(&r);
            }
            err[0] = '\0';
            const AmoStatus st = nn_image_load_mem(ctx, "m.jpg", m, len, &tf, (uint64_t)t, dst,
                                                   NULL, err, sizeof err);
            if (st != AMO_OK && (st != AMO_EFORMAT || strncmp(err, "m.jpg: ", 7)))
                fail_msg("mutation %d of file %d: status %d, '%s'", t, f, (int)st, err);
            failed += st != AMO_OK;
        }
        free(m);
    }
    print_message("mutated files: %d of %d refused, the rest decoded\n", failed, total);
    assert_true(failed > total / 2); /* libjpeg's warnings, libpng's CRCs */
    free(dst);
    nn_image_ctx_destroy(ctx);
    for (int f = 0; f < 3; f++)
        f < 2 ? tjFree(files[f]) : free(files[f]);
    free(src);
}

/* ---- the loader ---------------------------------------------------------------------- */

/* Every batch of two epochs and a half from a loader with `threads`,
 * decoding positions [lo, hi) of each batch (0, 0: all). */
static float *part_batches(const NnFolder *f, int threads, int train, int lo, int hi, int *nb,
                           int **ys)
{
    int idx[64];
    for (int i = 0; i < f->n; i++)
        idx[i] = i;
    NnLoaderConfig c = { .f = f, .idx = idx, .n = f->n, .batch = 3, .shuffle = train,
                         .drop_last = train, .seed = 7, .tf = nn_image_tf_default(train),
                         .threads = threads, .part_lo = lo, .part_hi = hi };
    c.tf.size = 32;
    c.tf.resize = 40;
    NnLoader *l;
    char err[512];
    assert_int_equal(nn_loader_create(&l, &c, err, sizeof err), AMO_OK);
    const size_t img = 3 * 32 * 32;
    float *x = malloc(64 * 3 * img * sizeof(float));
    memset(x, 0xff, 64 * 3 * img * sizeof(float)); /* NaNs: every row must be written */
    *ys = malloc(64 * 3 * sizeof(int));
    *nb = 0;
    for (int k = 0; k < 8; k++) {
        int cnt;
        assert_int_equal(nn_loader_next(l, x + (size_t)*nb * 3 * img, *ys + *nb * 3, &cnt, err,
                                        sizeof err), AMO_OK);
        *nb += cnt > 0;
    }
    nn_loader_destroy(l);
    return x;
}

static float *all_batches(const NnFolder *f, int threads, int train, int *nb, int **ys)
{
    return part_batches(f, threads, train, 0, 0, nb, ys);
}

static void loader_same_across_threads(void **state)
{
    (void)state;
    char root[512], err[512];
    path_in(root, sizeof root, "t1");
    NnFolder f;
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_OK);
    for (int train = 0; train < 2; train++) {
        int nb0, *y0;
        float *x0 = all_batches(&f, 0, train, &nb0, &y0);
        /* training: 3 batches per epoch (10 images, drop_last), 8 calls =
         * 3 + end + 3 + end; evaluation: 4 (the last of 1) + end + 3 */
        assert_int_equal(nb0, train ? 6 : 7);
        for (int t = 1; t <= 4; t += 3) {
            int nb, *y;
            float *x = all_batches(&f, t, train, &nb, &y);
            assert_int_equal(nb, nb0);
            assert_memory_equal(y, y0, (size_t)nb * 3 * sizeof(int));
            assert_memory_equal(x, x0, (size_t)nb * 3 * 3 * 32 * 32 * sizeof(float));
            free(x);
            free(y);
        }
        /* the epochs differ (a new shuffle, new crops) when training */
        if (train)
            assert_true(memcmp(x0, x0 + 3 * 3 * 3 * 32 * 32, 3 * 3 * 32 * 32 * sizeof(float)));
        free(x0);
        free(y0);
    }
    nn_folder_free(&f);
}

/* A data-parallel rank's part of each batch: the same rows as the whole
 * batch's, zero rows elsewhere, every label; at 0 and 3 threads, parts that
 * the evaluation's last batch of 1 cuts short or leaves empty. */
static void loader_parts(void **state)
{
    (void)state;
    char root[512], err[512];
    path_in(root, sizeof root, "t1");
    NnFolder f;
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_OK);
    const size_t img = 3 * 32 * 32;
    const int parts[3][2] = { { 0, 1 }, { 1, 3 }, { 2, 3 } };
    for (int train = 0; train < 2; train++) {
        int nb0, *y0;
        float *x0 = all_batches(&f, 0, train, &nb0, &y0);
        for (int t = 0; t <= 3; t += 3)
            for (int p = 0; p < 3; p++) {
                int nb, *y;
                float *x = part_batches(&f, t, train, parts[p][0], parts[p][1], &nb, &y);
                assert_int_equal(nb, nb0);
                assert_memory_equal(y, y0, (size_t)nb * 3 * sizeof(int));
                for (int b = 0; b < nb; b++)
                    for (int i = 0; i < 3; i++) {
                        const float *row = x + ((size_t)b * 3 + (size_t)i) * img;
                        if (i >= parts[p][0] && i < parts[p][1]) {
                            assert_memory_equal(row, x0 + ((size_t)b * 3 + (size_t)i) * img,
                                                img * sizeof(float));
                        } else {
                            for (size_t k = 0; k < img; k++)
                                assert_true(row[k] == 0.0f);
                        }
                    }
                free(x);
                free(y);
            }
        free(x0);
        free(y0);
    }
    NnLoader *l;
    int idx[1] = { 0 };
    NnLoaderConfig c = { .f = &f, .idx = idx, .n = 1, .batch = 3, .tf = nn_image_tf_default(0),
                         .part_lo = 2, .part_hi = 4 };
    assert_int_equal(nn_loader_create(&l, &c, err, sizeof err), AMO_EINVAL);
    assert_non_null(strstr(err, "part [2, 4) of a batch of 3"));
    nn_folder_free(&f);
}

/* Stopped after 4 batches and resumed from (epoch, pos) by a new loader:
 * the same batches as without the stop. */
static void loader_resumes(void **state)
{
    (void)state;
    char root[512], err[512];
    path_in(root, sizeof root, "t1");
    NnFolder f;
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_OK);
    int idx[10];
    for (int i = 0; i < 10; i++)
        idx[i] = i;
    NnLoaderConfig c = { .f = &f, .idx = idx, .n = 10, .batch = 4, .shuffle = 1, .drop_last = 1,
                         .seed = 3, .tf = nn_image_tf_default(1), .threads = 2 };
    c.tf.size = 24;
    const size_t bsz = 4 * 3 * 24 * 24;
    float *x = malloc(bsz * sizeof(float)), *want = malloc(8 * bsz * sizeof(float));
    int y[4], cnt;
    NnLoader *a, *b;
    assert_int_equal(nn_loader_create(&a, &c, err, sizeof err), AMO_OK);
    for (int k = 0; k < 8; k++) /* 2 per epoch, the ends included: 0 1 e 0 1 e 0 1 */
        assert_int_equal(nn_loader_next(a, want + k * bsz, y, &cnt, err, sizeof err), AMO_OK);
    nn_loader_destroy(a);
    assert_int_equal(nn_loader_create(&a, &c, err, sizeof err), AMO_OK);
    for (int k = 0; k < 4; k++)
        assert_int_equal(nn_loader_next(a, x, y, &cnt, err, sizeof err), AMO_OK);
    uint64_t epoch;
    int pos;
    nn_loader_position(a, &epoch, &pos);
    assert_true(epoch == 1 && pos == 4);
    nn_loader_destroy(a);
    assert_int_equal(nn_loader_create(&b, &c, err, sizeof err), AMO_OK);
    nn_loader_seek(b, epoch, pos);
    for (int k = 4; k < 8; k++) {
        assert_int_equal(nn_loader_next(b, x, y, &cnt, err, sizeof err), AMO_OK);
        assert_memory_equal(x, want + k * bsz, (size_t)cnt * bsz / 4 * sizeof(float));
    }
    nn_loader_destroy(b);
    free(x);
    free(want);
    nn_folder_free(&f);
}

/* A truncated image in the tree: the batch that holds it fails naming it,
 * at every thread count, and the loader can still be destroyed. */
static void loader_reports_bad_file(void **state)
{
    (void)state;
    mkdir_in("t3");
    mkdir_in("t3/a");
    write_jpeg("t3/a/1.jpg", 40, 30, TJPF_RGB, 0, 1);
    write_jpeg("t3/a/2.jpg", 40, 30, TJPF_RGB, 0, 2);
    write_raw("t3/a/3.jpg", "\xff\xd8\xff\xe0", 4);
    char root[512], err[512];
    path_in(root, sizeof root, "t3");
    NnFolder f;
    assert_int_equal(nn_folder_scan(&f, root, NULL, 0, err, sizeof err), AMO_OK);
    const int idx[3] = { 0, 1, 2 };
    for (int t = 0; t <= 3; t++) {
        NnLoaderConfig c = { .f = &f, .idx = idx, .n = 3, .batch = 3,
                             .tf = nn_image_tf_default(0), .threads = t };
        NnLoader *l;
        assert_int_equal(nn_loader_create(&l, &c, err, sizeof err), AMO_OK);
        float *x = malloc(3 * 3 * 224 * 224 * sizeof(float));
        int y[3], cnt;
        err[0] = '\0';
        assert_int_equal(nn_loader_next(l, x, y, &cnt, err, sizeof err), AMO_EFORMAT);
        if (!strstr(err, "t3/a/3.jpg: not a readable JPEG: no frame header in its 4 bytes"))
            fail_msg("%s", err);
        nn_loader_destroy(l);
        /* a part without the bad file (a data-parallel rank's share) never
         * decodes it: the batch comes whole */
        c.part_lo = 0;
        c.part_hi = 2;
        assert_int_equal(nn_loader_create(&l, &c, err, sizeof err), AMO_OK);
        assert_int_equal(nn_loader_next(l, x, y, &cnt, err, sizeof err), AMO_OK);
        assert_int_equal(cnt, 3);
        nn_loader_destroy(l);
        free(x);
    }
    nn_folder_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scan_maps_classes_as_torchvision),
        cmocka_unit_test(scan_refuses_empty_class_and_missing_dir),
        cmocka_unit_test(boxes_follow_the_formula),
        cmocka_unit_test(eval_transform_matches_reference),
        cmocka_unit_test(reduced_scale_is_close),
        cmocka_unit_test(decodes_gray_cmyk_progressive_png),
        cmocka_unit_test(refuses_bad_files_by_name),
        cmocka_unit_test(survives_mutated_files),
        cmocka_unit_test(loader_same_across_threads),
        cmocka_unit_test(loader_parts),
        cmocka_unit_test(loader_resumes),
        cmocka_unit_test(loader_reports_bad_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
