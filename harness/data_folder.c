/* --dataset folder: an ImageFolder tree (DIR/train/CLASS/IMAGE, DIR/val/CLASS/IMAGE,
 * DIR/test/CLASS/IMAGE) streamed through decoding threads (nn/loader.h), with
 * torchvision's ImageNet transforms (nn/image.h) and the ImageNet stem. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness/common.h"
#include "harness/error.h"
#include "harness/run.h"
#include "nn/resnet.h"

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* DIR/sub scanned (with train's classes when want), what was skipped said. */
static void scan(NnFolder *f, const Run *r, const char *sub, const NnFolder *want)
{
    const HxTrainSpec *s = r->s;
    char path[4200], err[1200] = "";
    hx_path_in(path, sizeof path, s->data_dir, sub);
    const AmoStatus st = nn_folder_scan(f, path, want ? want->class_names : NULL,
                                        want ? want->classes : 0, err, sizeof err);
    if (st != AMO_OK)
        hx_fail(st == AMO_EIO && !want ? HX_EXIT_USAGE : HX_EXIT_FAIL,
                "--data %s: %s (an ImageFolder tree: DIR/train/CLASS/IMAGE, DIR/val/CLASS/IMAGE)",
                s->data_dir, err);
    if (!s->quiet)
        fprintf(stderr, "%s: %d images in %d classes; skipped: %ld not regular files, %ld "
                "symlink loops; %ld files without an image extension ignored\n", path, f->n,
                f->classes, f->not_regular, f->loops, f->other);
}

static NnLoader *loader(const Run *r, const NnFolder *f, const int *idx, int n, int train)
{
    const HxTrainSpec *s = r->s;
    NnLoaderConfig c = { .f = f, .idx = idx, .n = n, .batch = s->batch, .shuffle = train,
                         .drop_last = train, .seed = train ? s->seed : 0,
                         .tf = nn_image_tf_default(train && s->augment),
                         .threads = s->loader_threads, .depth = train ? 2 : 1,
                         /* data-parallel: this rank decodes its share alone */
                         .part_lo = r->rank * r->bl, .part_hi = (r->rank + 1) * r->bl };
    c.tf.reduce = c.tf.reduce && !s->full_decode; /* evaluations: full size, always */
    c.tf.size = s->image_size;
    c.tf.resize = (int)(s->image_size * 256.0 / 224.0 + 0.5);
    NnLoader *l;
    char err[1200] = "";
    if (nn_loader_create(&l, &c, err, sizeof err) != AMO_OK)
        hx_fail(HX_EXIT_FAIL, "--dataset folder: %s", err);
    return l;
}

static int *iota(int n)
{
    int *v = hx_malloc((size_t)(n ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++)
        v[i] = i;
    return v;
}

void hx_load_folder(Run *r)
{
    const HxTrainSpec *s = r->s;
    if (!nn_image_supported(NN_IMAGE_JPEG))
        hx_fail(HX_EXIT_USAGE, "--dataset folder: amo-bench was built without libturbojpeg "
                "(apt-get install libturbojpeg0-dev, then meson setup --reconfigure)");
    if (!s->data_dir)
        hx_fail(HX_EXIT_USAGE, "--dataset folder needs --data DIR (an ImageFolder tree: "
                "DIR/train/CLASS/IMAGE, DIR/val/CLASS/IMAGE)");
    scan(&r->ftrain, r, "train", NULL);
    char path[4200], err[1200] = "";
    int *tidx, *vidx, nt, nv;
    const NnFolder *vf = &r->ftrain;
    hx_path_in(path, sizeof path, s->data_dir, "val");
    if (is_dir(path)) { /* ImageNet's val/ is the validation set */
        scan(&r->fval, r, "val", &r->ftrain);
        vf = &r->fval;
        tidx = iota(nt = r->ftrain.n);
        vidx = iota(nv = r->fval.n);
    } else { /* --val images held out of train/, as for the other data sets */
        const int want = s->nval < r->ftrain.n ? s->nval : r->ftrain.n / 10;
        if (want < 1 || nn_folder_split(&r->ftrain, want, 0, &tidx, &nt, &vidx, &nv, err,
                                        sizeof err) != AMO_OK)
            hx_fail(HX_EXIT_USAGE, "--val %d: %s/train: %d images, no %s/val: %s", s->nval,
                    s->data_dir, r->ftrain.n, s->data_dir,
                    err[0] ? err : "no validation images");
    }
    if (nt < s->batch)
        hx_fail(HX_EXIT_USAGE, "--batch %d: larger than the %d training examples", s->batch, nt);
    if (nv < 1)
        hx_fail(HX_EXIT_USAGE, "--data %s: val/ has no images", s->data_dir);
    r->tl = loader(r, &r->ftrain, tidx, nt, 1);
    r->vl = loader(r, vf, vidx, nv, 0);
    r->tsrc.l = r->tl;
    r->vsrc.l = r->vl;
    hx_path_in(path, sizeof path, s->data_dir, "test");
    r->ntest = nv;
    if (is_dir(path)) {
        scan(&r->ftest, r, "test", &r->ftrain);
        int *eidx = iota(r->ftest.n);
        r->el = loader(r, &r->ftest, eidx, r->ftest.n, 0);
        r->ntest = r->ftest.n;
        free(eidx);
        r->esrc.l = r->el;
    } else { /* ImageNet has no labelled test set: val/ is what is reported */
        r->test_is_val = 1;
        r->esrc.l = r->vl;
    }
    free(tidx);
    free(vidx);
    r->in_ch = 3;
    r->in_h = r->in_w = s->image_size;
    r->classes = r->ftrain.classes;
    r->stem = NN_STEM_IMAGENET;
    r->ntrain = nt;
    r->nval = nv;
}
