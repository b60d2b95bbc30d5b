/* An ImageFolder tree, as torchvision.datasets.ImageFolder reads it:
 * DIR/CLASS/.../FILE, classes are the subdirectories of DIR sorted by name
 * (bytewise, as Python sorts str), their labels 0, 1, ... in that order;
 * the files of a class are found walking its folder (symlinks followed),
 * sorted, and kept when their name ends in one of torchvision's image
 * extensions (IMG_EXTENSIONS, any case).
 *
 * What is not an image to train on is a decision, never a crash:
 *   - a file with another extension: ignored, counted (other);
 *   - an image name that is not a regular file (a FIFO, a socket, a device,
 *     a dangling symlink): skipped, counted (not_regular);
 *   - a directory reached again through a symlink (a loop): not walked
 *     again, counted (loops);
 *   - a class folder with no image: an error naming it (torchvision's too);
 *   - an unreadable directory: an error naming it.
 * The files' contents are read later (nn/image.h, nn/loader.h). */
#ifndef AMO_NN_FOLDER_H
#define AMO_NN_FOLDER_H

#include <stddef.h>

#include "common/status.h"

typedef struct NnFolder {
    int classes;
    char **class_names;   /* (classes) sorted                        */
    int n;                /* images                                  */
    char **paths;         /* (n) DIR/CLASS/..., sorted within a class */
    int *y;               /* (n) labels in [0, classes)              */
    long other, not_regular, loops; /* skipped, as above              */
} NnFolder;

/* Scans dir.  With want (nwant names, sorted), the classes are want's and
 * a subdirectory not among them is an error naming it (a val/ tree read
 * with train/'s classes); a class of want without a folder has no images
 * there and is not an error. */
AMO_API AmoStatus nn_folder_scan(NnFolder *f, const char *dir, char *const *want, int nwant,
                                 char *err, size_t errlen);
AMO_API void nn_folder_free(NnFolder *f);

/* A stratified split of f's images: nval of them, as even over the
 * classes as their sizes allow (the remainder to the first classes), by a
 * seeded shuffle; the rest train.  Both lists sorted; free() them. */
AMO_API AmoStatus nn_folder_split(const NnFolder *f, int nval, unsigned long long seed,
                                  int **train, int *ntrain, int **val, int *nval_out, char *err,
                                  size_t errlen);

#endif
