/* One image file to one network input: JPEG (libjpeg-turbo) or PNG
 * (libpng) decoded to RGB, cropped, resized and normalised as torchvision's
 * standard ImageNet pipeline does it (PyTorch's parameters are the
 * defaults, nn_image_tf_default):
 *
 *   training    RandomResizedCrop(224, scale (0.08, 1), ratio (3/4, 4/3)),
 *               RandomHorizontalFlip, ToTensor, Normalize(mean, std)
 *   evaluation  Resize(256), CenterCrop(224), ToTensor, Normalize(mean, std)
 *
 * Resizing is PIL's antialiased bilinear resampling (Image.resize with
 * BILINEAR, which torchvision uses on PIL images), rounded to 8 bits after
 * each pass as PIL does.  A JPEG is decoded at a reduced scale (libjpeg-
 * turbo's scaled IDCT, 1/8 .. 7/8) when the crop still covers the output
 * at that scale; `reduce = 0` decodes at full size as PIL does, and gives
 * torchvision's pixels exactly (results/imagenet/README.md).  The default
 * reduces for training only, so that evaluations match torchvision's.
 * Grayscale images are replicated to RGB and CMYK JPEGs converted as PIL's
 * convert("RGB") does (Adobe's inverted CMYK: R = C K / 255).
 *
 * Randomness comes from (seed, epoch, image index) alone (amo_rng_at), so
 * a batch's pixels do not depend on which thread decoded which image. */
#ifndef AMO_NN_IMAGE_H
#define AMO_NN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* The file's kind, from its first bytes, not its name (ImageNet's train/
 * holds a PNG and CMYK JPEGs under .JPEG names). */
typedef enum NnImageKind { NN_IMAGE_UNKNOWN, NN_IMAGE_JPEG, NN_IMAGE_PNG } NnImageKind;

typedef struct NnImageTf {
    int train;                   /* 1: random resized crop + flip; 0: resize + centre crop */
    int size;                    /* output side (224)                                     */
    int resize;                  /* evaluation: the shorter side before the crop (256)    */
    double scale_lo, scale_hi;   /* training: crop area / image area (0.08, 1)            */
    double ratio_lo, ratio_hi;   /* training: crop aspect ratio w / h (3/4, 4/3)          */
    int flip;                    /* training: horizontal flip with probability 1/2        */
    int reduce;                  /* JPEG: decode at a reduced scale when the crop allows  */
                                 /* (default: training only)                              */
    float mean[3], std[3];       /* per channel, of pixels / 255                          */
} NnImageTf;

/* PyTorch's ImageNet example: train (1) or evaluation (0) transform. */
AMO_API NnImageTf nn_image_tf_default(int train);

/* A crop box in image pixels (x0, y0 the top-left corner) and whether the
 * output is flipped. */
typedef struct NnBox { double x0, y0, w, h; int flip; } NnBox;

/* The transform's box for an image of w x h: torchvision's
 * RandomResizedCrop.get_params (ten tries, then the centre crop) with the
 * draws of stream `key` (nn_image_key), or Resize + CenterCrop's box in
 * fractional pixels. */
AMO_API NnBox nn_image_box(const NnImageTf *tf, int w, int h, uint64_t key);
/* The random stream of one image: (seed, epoch, index). */
AMO_API uint64_t nn_image_key(uint64_t seed, uint64_t epoch, uint64_t index);

/* Whether this build decodes kind (libturbojpeg, libpng found at setup). */
AMO_API int nn_image_supported(NnImageKind kind);
AMO_API NnImageKind nn_image_kind(const void *buf, size_t len);

/* A decoder's state and buffers, one per thread. */
typedef struct NnImageCtx NnImageCtx;
AMO_API AmoStatus nn_image_ctx_create(NnImageCtx **out, char *err, size_t errlen);
AMO_API void nn_image_ctx_destroy(NnImageCtx *c);

/* The decoded RGB pixels of one file in memory (name: for messages), at
 * scale_num / 8 of full size (8: full size; a PNG is always full size).
 * *rgb (w x h x 3) points into c and stays valid until its next call. */
AMO_API AmoStatus nn_image_decode(NnImageCtx *c, const char *name, const void *buf, size_t len,
                                  int scale_num, const uint8_t **rgb, int *w, int *h, char *err,
                                  size_t errlen);

/* The file at path through tf into dst (3, size, size), its random draws
 * from key.  box, if not NULL, receives the crop in full-size pixels.  A
 * missing, unreadable, truncated or non-image file is an error naming it
 * (AMO_EIO, AMO_EFORMAT; AMO_EUNSUPPORTED for a kind this build cannot
 * decode). */
AMO_API AmoStatus nn_image_load(NnImageCtx *c, const char *path, const NnImageTf *tf,
                                uint64_t key, float *dst, NnBox *box, char *err, size_t errlen);

/* The same from the file's bytes, for tests and fuzzers. */
AMO_API AmoStatus nn_image_load_mem(NnImageCtx *c, const char *name, const void *buf, size_t len,
                                    const NnImageTf *tf, uint64_t key, float *dst, NnBox *box,
                                    char *err, size_t errlen);

#endif
