#!/usr/bin/python3
"""torchvision's ImageFolder + DataLoader with PyTorch's ImageNet training
transform (RandomResizedCrop(224), RandomHorizontalFlip, ToTensor,
Normalize), timed as `amo-bench loader` times ours:

    torchvision_loader.py TREE WORKERS IMAGES [BATCH]

WORKERS: DataLoader's num_workers (0: decoded in this process).  Prints one
CSV row: workers, images, seconds, images/s, images/s per worker.  The
workers' start-up is outside the timing (the first batch is not counted).
"""
import sys
import time

import torch
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def main():
    root, workers, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    torch.set_num_threads(1)
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    ds = datasets.ImageFolder(f"{root}/train", tf)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
    it = iter(dl)
    next(it)  # workers started, one batch out
    n, t0 = 0, time.perf_counter()
    for x, y in it:
        n += len(y)
        if n >= images:
            break
    s = time.perf_counter() - t0
    print("workers,images,seconds,images_per_s,images_per_s_per_worker")
    print(f"{workers},{n},{s:.3f},{n / s:.1f},{n / s / max(workers, 1):.1f}")


if __name__ == "__main__":
    main()
