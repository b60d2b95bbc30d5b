/* amo-bench loader: how fast an image folder is decoded and augmented
 * (nn/loader.h) by N threads, without a network: the rate a training step
 * may consume before it waits (results/imagenet/README.md). */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "harness/commands.h"
#include "harness/common.h"
#include "harness/dist.h"
#include "harness/error.h"
#include "harness/parse.h"
#include "harness/run.h"
#include "harness/timer.h"
#include "nn/loader.h"

static void usage(void)
{
    printf("Usage: amo-bench loader --data DIR [OPTIONS]\n\n"
           "Decodes and augments DIR/train (an ImageFolder tree, as train --dataset folder)\n"
           "through --loader-threads threads and prints images/s, in total and per thread.\n\n"
           "  --data DIR            the tree (DIR/train/CLASS/IMAGE)\n"
           "  --split NAME          train (default: the training transform) or val\n"
           "  --loader-threads N    decoding threads (default 2; 0: in this thread)\n"
           "  --batch N             (default 32)\n"
           "  --images N            images to decode (default: one pass over the split)\n"
           "  --image-size N        crop side (224)\n"
           "  --full-decode         no reduced-scale JPEG decoding\n"
           "  --seed N              (default 1)\n"
           "  --dump FILE           the first batch's pixels, float32 (batch, 3, size, size),\n"
           "                        for a comparison with torchvision (val: in file order)\n");
}

int hx_cmd_loader(int argc, char **argv, const HxInvocation *whole)
{
    (void)whole;
    enum { O_DATA = 256, O_SPLIT, O_THREADS, O_BATCH, O_IMAGES, O_SIZE, O_FULL, O_SEED, O_HELP, O_DUMP };
    static const struct option opts[] = {
        { "data", 1, 0, O_DATA }, { "split", 1, 0, O_SPLIT },
        { "loader-threads", 1, 0, O_THREADS }, { "batch", 1, 0, O_BATCH },
        { "images", 1, 0, O_IMAGES }, { "image-size", 1, 0, O_SIZE },
        { "full-decode", 0, 0, O_FULL }, { "seed", 1, 0, O_SEED }, { "help", 0, 0, O_HELP },
        { "dump", 1, 0, O_DUMP }, { 0, 0, 0, 0 },
    };
    static const char *const splits[] = { "train", "val", NULL };
    const char *data = NULL, *dump = NULL;
    int split = 0, threads = 2, batch = 32, size = 224, full = 0;
    long images = 0, seed = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_SPLIT: split = hx_parse_choice("--split", optarg, splits); break;
        case O_THREADS: threads = (int)hx_parse_long("--loader-threads", optarg, 0, 256); break;
        case O_BATCH: batch = (int)hx_parse_long("--batch", optarg, 1, 4096); break;
        case O_IMAGES: images = hx_parse_long("--images", optarg, 1, 1L << 40); break;
        case O_SIZE: size = (int)hx_parse_long("--image-size", optarg, 8, 1024); break;
        case O_FULL: full = 1; break;
        case O_DUMP: dump = optarg; break;
        case O_SEED: seed = hx_parse_long("--seed", optarg, 0, 1L << 62); break;
        case O_HELP:
            if (hx_dist_root()) /* under mpirun: once, not once per rank */
                usage();
            return HX_EXIT_OK;
        default: hx_getopt_fail(c, argv);
        }
    }
    if (optind < argc)
        hx_fail(HX_EXIT_USAGE, "loader: unexpected argument '%s'", argv[optind]);
    hx_one_process("loader");
    if (!data)
        hx_fail(HX_EXIT_USAGE, "loader: --data DIR is required");
    char path[4200], err[1200] = "";
    hx_path_in(path, sizeof path, data, splits[split]);
    NnFolder f;
    if (nn_folder_scan(&f, path, NULL, 0, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_USAGE, "--data %s: %s", data, err);
    int *idx = hx_malloc((size_t)f.n * sizeof(int));
    for (int i = 0; i < f.n; i++)
        idx[i] = i;
    NnLoaderConfig cfg = { .f = &f, .idx = idx, .n = f.n, .batch = batch, .shuffle = split == 0,
                           .drop_last = 0, .seed = (uint64_t)seed,
                           .tf = nn_image_tf_default(split == 0), .threads = threads };
    cfg.tf.size = size;
    cfg.tf.resize = (int)(size * 256.0 / 224.0 + 0.5);
    cfg.tf.reduce = cfg.tf.reduce && !full;
    NnLoader *l;
    if (nn_loader_create(&l, &cfg, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "loader: %s", err);
    float *x = hx_malloc((size_t)batch * 3 * size * size * sizeof(float));
    int *y = hx_malloc((size_t)batch * sizeof(int));
    if (!images)
        images = f.n;
    long done = 0;
    const double t0 = hx_now();
    while (done < images) {
        int cnt;
        if (nn_loader_next(l, x, y, &cnt, err, sizeof err) != AMO_OK)
            hx_fail(HX_EXIT_FAIL, "%s", err);
        if (dump && done == 0 && amo_write_atomic(dump, x, (size_t)cnt * 3 * size * size
                                                  * sizeof(float), err, sizeof err) != AMO_OK)
            hx_fail(HX_EXIT_FAIL, "--dump: %s", err);
        done += cnt;
    }
    const double s = hx_now() - t0;
    printf("split,loader_threads,batch,image_size,reduced_decode,images,seconds,images_per_s,"
           "images_per_s_per_thread\n%s,%d,%d,%d,%d,%ld,%.3f,%.1f,%.1f\n", splits[split], threads,
           batch, size, cfg.tf.reduce, done, s, done / s, done / s / (threads ? threads : 1));
    nn_loader_destroy(l);
    nn_folder_free(&f);
    free(idx);
    free(x);
    free(y);
    return HX_EXIT_OK;
}
