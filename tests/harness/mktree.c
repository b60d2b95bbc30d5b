/* Writes an ImageFolder tree of JPEGs for tests and benchmarks:
 *     mktree DIR CLASSES PER_CLASS VAL_PER_CLASS small|imagenet [SEED]
 * DIR/train/cNNN/NNNNN.JPEG and DIR/val/cNNN/NNNNN.JPEG (no val/ when
 * VAL_PER_CLASS is 0).  small: sides 24..95; imagenet: ImageNet's common
 * sizes (500x375, 375x500, 500x333, ... up to 1600x1200), quality 90,
 * 4:2:0.  Every 10th image is grayscale, every 7th progressive, the 5th of
 * each class CMYK, and, with libpng, the 3rd of class 0 a PNG under a .JPEG
 * name (as ImageNet's n02105855_2933.JPEG).  A class's images share a hue,
 * so a network can learn them. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <turbojpeg.h>

#include "common/rng.h"
#include "nn/image_config.h"
#if AMO_HAVE_PNG
#include <png.h>
#endif

static void die(const char *what, const char *path)
{
    fprintf(stderr, "mktree: %s: %s\n", path, what);
    exit(1);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f))
        die("cannot write", path);
}

static void one_image(const char *path, int w, int h, int cls, int k, AmoRng *r)
{
    const int gray = k % 10 == 9, cmyk = k == 4, png = cls == 0 && k == 2 && AMO_HAVE_PNG;
    const int ch = gray ? 1 : cmyk ? 4 : 3;
    unsigned char *px = malloc((size_t)w * h * ch);
    const int hue[3] = { 60 + cls * 53 % 160, 60 + cls * 97 % 160, 60 + cls * 31 % 160 };
    const int fx = 2 + (int)amo_rng_below(r, 9), fy = 2 + (int)amo_rng_below(r, 9);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const int wave = ((x * fx / 16 + y * fy / 16) & 31) * 2 + ((x ^ y) & 7);
            for (int c = 0; c < ch; c++) {
                const int v = (c < 3 ? hue[c] : 200) + wave - 32 + (int)(amo_rng_u64(r) & 15);
                px[((size_t)y * w + x) * ch + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
#if AMO_HAVE_PNG
    if (png) {
        png_image im = { .version = PNG_IMAGE_VERSION, .width = (png_uint_32)w,
                         .height = (png_uint_32)h, .format = PNG_FORMAT_RGB };
        if (!png_image_write_to_file(&im, path, 0, px, 0, NULL))
            die(im.message, path);
        free(px);
        return;
    }
#endif
    /* a handle per image: libturbojpeg 2.1 carries a progressive image's
     * settings over to the next one compressed with the same handle */
    tjhandle tj = tjInitCompress();
    unsigned char *j = NULL;
    unsigned long len = 0;
    const int pf = gray ? TJPF_GRAY : cmyk ? TJPF_CMYK : TJPF_RGB;
    const int samp = gray ? TJSAMP_GRAY : cmyk ? TJSAMP_444 : TJSAMP_420;
    if (tjCompress2(tj, px, w, 0, h, pf, &j, &len, samp, 90, k % 7 == 6 ? TJFLAG_PROGRESSIVE : 0))
        die(tjGetErrorStr2(tj), path);
    write_file(path, j, len);
    tjFree(j);
    tjDestroy(tj);
    free(px);
}

static void split(const char *dir, const char *name, int classes, int per,
                  int imagenet, AmoRng *r)
{
    static const int sizes[][2] = { { 500, 375 }, { 375, 500 }, { 500, 333 }, { 333, 500 },
                                    { 500, 400 }, { 640, 480 }, { 500, 500 }, { 800, 600 },
                                    { 400, 300 }, { 1024, 768 }, { 1600, 1200 }, { 500, 281 } };
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (mkdir(path, 0755))
        die("cannot create", path);
    for (int c = 0; c < classes; c++) {
        snprintf(path, sizeof path, "%s/%s/c%03d", dir, name, c);
        if (mkdir(path, 0755))
            die("cannot create", path);
        for (int k = 0; k < per; k++) {
            int w, h;
            if (imagenet) {
                const int *s = sizes[amo_rng_below(r, sizeof sizes / sizeof *sizes)];
                w = s[0];
                h = s[1];
            } else {
                w = 24 + (int)amo_rng_below(r, 72);
                h = 24 + (int)amo_rng_below(r, 72);
            }
            snprintf(path, sizeof path, "%s/%s/c%03d/%05d.JPEG", dir, name, c, k);
            one_image(path, w, h, c, k, r);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 6 || (strcmp(argv[5], "small") && strcmp(argv[5], "imagenet"))) {
        fprintf(stderr, "usage: mktree DIR CLASSES PER_CLASS VAL_PER_CLASS small|imagenet [SEED]\n");
        return 2;
    }
    const char *dir = argv[1];
    const int classes = atoi(argv[2]), per = atoi(argv[3]), val = atoi(argv[4]);
    const int imagenet = !strcmp(argv[5], "imagenet");
    AmoRng r = amo_rng(argc > 6 ? strtoull(argv[6], NULL, 10) : 1);
    if (classes < 1 || per < 1 || val < 0)
        die("bad counts", dir);
    if (mkdir(dir, 0755))
        die("cannot create", dir);
    split(dir, "train", classes, per, imagenet, &r);
    if (val)
        split(dir, "val", classes, val, imagenet, &r);
    return 0;
}
