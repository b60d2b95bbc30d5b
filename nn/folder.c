/* ImageFolder trees (nn/folder.h). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/rng.h"
#include "nn/folder.h"

/* torchvision.datasets.folder.IMG_EXTENSIONS: the same files are taken, in
 * the same order, so an index means the same image here and there. */
static int image_name(const char *name)
{
    static const char *const ext[] = { ".jpg", ".jpeg", ".png", ".ppm", ".bmp",
                                       ".pgm", ".tif",  ".tiff", ".webp" };
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        const size_t e = strlen(ext[i]);
        if (n >= e && !strcasecmp(name + n - e, ext[i]))
            return 1;
    }
    return 0;
}

static char *join(const char *a, const char *b)
{
    const size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p) {
        memcpy(p, a, la);
        p[la] = '/';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

/* A file found: its path and where its directory part ends, for
 * sorted(os.walk(...)) order: by directory, then by name. */
typedef struct Entry { char *path; size_t dirlen; int y; } Entry;

typedef struct Walk {
    Entry *e;
    size_t n, cap;
    NnFolder *f;
    struct { dev_t dev; ino_t ino; } up[64]; /* the directories above, for loops */
    int depth;
    char *err;
    size_t errlen;
} Walk;

static int cmp_entry(const void *pa, const void *pb)
{
    const Entry *a = pa, *b = pb;
    const size_t m = a->dirlen < b->dirlen ? a->dirlen : b->dirlen;
    int c = memcmp(a->path, b->path, m);
    if (c || a->dirlen != b->dirlen)
        return c ? c : (a->dirlen < b->dirlen ? -1 : 1);
    return strcmp(a->path + a->dirlen, b->path + b->dirlen);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static AmoStatus push(Walk *w, char *path, size_t dirlen, int y)
{
    if (w->n == w->cap) {
        const size_t cap = w->cap ? 2 * w->cap : 1024;
        Entry *e = realloc(w->e, cap * sizeof(*e));
        if (!e) {
            free(path);
            return amo_err(AMO_ENOMEM, w->err, w->errlen, "out of memory for %zu file names", cap);
        }
        w->e = e;
        w->cap = cap;
    }
    w->e[w->n++] = (Entry){ path, dirlen, y };
    return AMO_OK;
}

/* The entry names of dir, sorted; *names and each name free()d by the
 * caller. */
static AmoStatus list_dir(const char *dir, char ***names, size_t *count, char *err, size_t errlen)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return amo_err(AMO_EIO, err, errlen, "%s: cannot read the directory: %s", dir,
                       strerror(errno));
    size_t cap = 0;
    AmoStatus st = AMO_OK;
    struct dirent *de;
    while (st == AMO_OK && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(*names, cap * sizeof(char *));
            if (!p) {
                st = amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory", dir);
                break;
            }
            *names = p;
        }
        if (!((*names)[*count] = strdup(de->d_name)))
            st = amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory", dir);
        else
            ++*count;
    }
    closedir(d);
    if (st == AMO_OK && *count > 1) /* an empty folder has no array at all */
        qsort(*names, *count, sizeof(char *), cmp_str);
    return st;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* os.walk(dir, followlinks=True) for class y, loops cut. */
static AmoStatus walk(Walk *w, const char *dir, int y)
{
    char **names;
    size_t count;
    AmoStatus st = list_dir(dir, &names, &count, w->err, w->errlen);
    for (size_t i = 0; st == AMO_OK && i < count; i++) {
        char *path = join(dir, names[i]);
        if (!path) {
            st = amo_err(AMO_ENOMEM, w->err, w->errlen, "%s: out of memory", dir);
            break;
        }
        struct stat sb;
        const int ok = stat(path, &sb) == 0; /* through symlinks */
        if (ok && S_ISDIR(sb.st_mode)) {
            int loop = 0;
            for (int k = 0; k < w->depth; k++)
                loop |= w->up[k].dev == sb.st_dev && w->up[k].ino == sb.st_ino;
            if (loop || w->depth == (int)(sizeof w->up / sizeof *w->up)) {
                w->f->loops++;
            } else {
                w->up[w->depth].dev = sb.st_dev;
                w->up[w->depth++].ino = sb.st_ino;
                st = walk(w, path, y);
                w->depth--;
            }
            free(path);
        } else if (!image_name(names[i])) {
            w->f->other++;
            free(path);
        } else if (!ok || !S_ISREG(sb.st_mode)) {
            w->f->not_regular++;
            free(path);
        } else {
            st = push(w, path, strlen(dir) + 1, y);
        }
    }
    free_names(names, count);
    return st;
}

void nn_folder_free(NnFolder *f)
{
    if (!f)
        return;
    for (int i = 0; f->class_names && i < f->classes; i++)
        free(f->class_names[i]);
    for (int i = 0; f->paths && i < f->n; i++)
        free(f->paths[i]);
    free(f->class_names);
    free(f->paths);
    free(f->y);
    memset(f, 0, sizeof(*f));
}

/* The class folders of dir (its subdirectories, through symlinks), sorted. */
static AmoStatus find_classes(NnFolder *f, const char *dir, char ***cls, size_t *ncls, char *err,
                              size_t errlen)
{
    char **names;
    size_t count, k = 0;
    AmoStatus st = list_dir(dir, &names, &count, err, errlen);
    for (size_t i = 0; st == AMO_OK && i < count; i++) {
        char *path = join(dir, names[i]);
        struct stat sb;
        if (!path)
            st = amo_err(AMO_ENOMEM, err, errlen, "%s: out of memory", dir);
        else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            names[k++] = names[i];
        else {
            f->other++;
            free(names[i]);
        }
        free(path);
    }
    *cls = names;
    *ncls = st == AMO_OK ? k : count;
    if (st != AMO_OK) {
        free_names(names, *ncls);
        *cls = NULL;
        *ncls = 0;
    }
    return st;
}

static int find_name(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return i;
    return -1;
}

/* Fills f from the entries, in sorted(os.walk) order within each class. */
static AmoStatus collect(NnFolder *f, Walk *w, char *err, size_t errlen)
{
    if (w->n > INT32_MAX)
        return amo_err(AMO_EINVAL, err, errlen, "%zu images: more than %d", w->n, INT32_MAX);
    f->paths = malloc((w->n ? w->n : 1) * sizeof(char *));
    f->y = malloc((w->n ? w->n : 1) * sizeof(int));
    if (!f->paths || !f->y)
        return amo_err(AMO_ENOMEM, err, errlen, "out of memory for %zu images", w->n);
    size_t start = 0;
    while (start < w->n) { /* the entries come class by class */
        size_t end = start;
        while (end < w->n && w->e[end].y == w->e[start].y)
            end++;
        qsort(w->e + start, end - start, sizeof(Entry), cmp_entry);
        start = end;
    }
    for (size_t i = 0; i < w->n; i++) {
        f->paths[i] = w->e[i].path;
        f->y[i] = w->e[i].y;
    }
    f->n = (int)w->n;
    w->n = 0;
    return AMO_OK;
}

AmoStatus nn_folder_scan(NnFolder *f, const char *dir, char *const *want, int nwant, char *err,
                         size_t errlen)
{
    memset(f, 0, sizeof(*f));
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return amo_err(AMO_EIO, err, errlen, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return amo_err(AMO_EIO, err, errlen, "%s: not a directory", dir);
    char **cls;
    size_t ncls;
    AmoStatus st = find_classes(f, dir, &cls, &ncls, err, errlen);
    if (st != AMO_OK)
        return st;
    Walk w = { .f = f, .err = err, .errlen = errlen, .depth = 1 };
    w.up[0].dev = sb.st_dev;
    w.up[0].ino = sb.st_ino;
    if (!want && ncls == 0)
        st = amo_err(AMO_EFORMAT, err, errlen,
                     "%s: no class folders (an ImageFolder tree: %s/CLASS/IMAGE)", dir, dir);
    for (size_t i = 0; st == AMO_OK && want && i < ncls; i++)
        if (find_name(want, nwant, cls[i]) < 0)
            st = amo_err(AMO_EFORMAT, err, errlen, "%s/%s: a class the training set does not have",
                         dir, cls[i]);
    f->classes = want ? nwant : (int)ncls;
    char *const *names = want ? want : cls;
    if (st == AMO_OK && !(f->class_names = calloc((size_t)f->classes, sizeof(char *))))
        st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for %d classes", f->classes);
    for (int k = 0; st == AMO_OK && k < f->classes; k++)
        if (!(f->class_names[k] = strdup(names[k])))
            st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for %d classes", f->classes);
    for (size_t i = 0; st == AMO_OK && i < ncls; i++) {
        const int y = want ? find_name(want, nwant, cls[i]) : (int)i;
        char *path = join(dir, cls[i]);
        if (!path) {
            st = amo_err(AMO_ENOMEM, err, errlen, "out of memory");
            break;
        }
        const size_t before = w.n;
        w.depth = 1;
        if (stat(path, &sb) == 0) {
            w.up[1].dev = sb.st_dev;
            w.up[1].ino = sb.st_ino;
            w.depth = 2;
        }
        st = walk(&w, path, y);
        if (st == AMO_OK && w.n == before)
            st = amo_err(AMO_EFORMAT, err, errlen,
                         "%s: a class folder with no image files (.jpg, .jpeg, .png, ...)", path);
        free(path);
    }
    if (st == AMO_OK)
        st = collect(f, &w, err, errlen);
    for (size_t i = 0; i < w.n; i++)
        free(w.e[i].path);
    free(w.e);
    free_names(cls, ncls);
    if (st != AMO_OK)
        nn_folder_free(f);
    return st;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

AmoStatus nn_folder_split(const NnFolder *f, int nval, unsigned long long seed, int **train,
                          int *ntrain, int **val, int *nval_out, char *err, size_t errlen)
{
    *train = *val = NULL;
    *ntrain = *nval_out = 0;
    if (nval < 0 || nval >= f->n)
        return amo_err(AMO_EINVAL, err, errlen, "validation size %d: must be in [0, %d)", nval,
                       f->n);
    int *perm = malloc((size_t)f->n * sizeof(int));
    int *count = calloc((size_t)f->classes, sizeof(int));
    *train = malloc((size_t)f->n * sizeof(int));
    *val = malloc((size_t)(nval ? nval : 1) * sizeof(int));
    AmoStatus st = AMO_OK;
    if (!perm || !count || !*train || !*val)
        st = amo_err(AMO_ENOMEM, err, errlen, "out of memory for the split");
    for (int i = 0; st == AMO_OK && i < f->n; i++)
        perm[i] = i;
    AmoRng r = amo_rng(seed);
    for (int i = f->n - 1; st == AMO_OK && i > 0; i--) {
        const int j = (int)amo_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; st == AMO_OK && i < f->n; i++) {
        const int y = f->y[perm[i]];
        const int quota = nval / f->classes + (y < nval % f->classes);
        if (count[y] < quota && *nval_out < nval) {
            count[y]++;
            (*val)[(*nval_out)++] = perm[i];
        } else {
            (*train)[(*ntrain)++] = perm[i];
        }
    }
    if (st == AMO_OK && *nval_out != nval)
        st = amo_err(AMO_EINVAL, err, errlen,
                     "validation size %d: the classes are too small for a stratified split "
                     "(got %d)", nval, *nval_out);
    free(perm);
    free(count);
    if (st != AMO_OK) {
        free(*train);
        free(*val);
        *train = *val = NULL;
        *ntrain = *nval_out = 0;
        return st;
    }
    qsort(*val, (size_t)*nval_out, sizeof(int), cmp_int);
    qsort(*train, (size_t)*ntrain, sizeof(int), cmp_int);
    return AMO_OK;
}
