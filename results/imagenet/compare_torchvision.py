#!/usr/bin/python3
"""Our evaluation transform against torchvision's, pixel by pixel.

    compare_torchvision.py TREE DUMP [SPLIT]

DUMP is `amo-bench loader --data TREE --split val --batch N --dump DUMP`'s
first batch (float32, (N, 3, 224, 224), in ImageFolder's order); the same
images go through Resize(256), CenterCrop(224), ToTensor, Normalize with
PIL.  Prints the largest and mean difference in 8-bit levels per image, and
the image's kind (PIL's mode before convert("RGB")).  Debian's python3 with
python3-torchvision and python3-pil.
"""
import sys

import numpy as np
from PIL import Image
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def main():
    root, dump = sys.argv[1], sys.argv[2]
    split = sys.argv[3] if len(sys.argv) > 3 else "val"
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    ds = datasets.ImageFolder(f"{root}/{split}", tf)
    ours = np.fromfile(dump, dtype=np.float32).reshape(-1, 3, 224, 224)
    levels = 255 * np.array(STD, dtype=np.float64).reshape(3, 1, 1)
    worst = 0.0
    print("image,kind,max_levels,mean_levels")
    for i in range(len(ours)):
        ref = ds[i][0].numpy().astype(np.float64)
        d = np.abs(ours[i].astype(np.float64) - ref) * levels
        path = ds.samples[i][0]
        with Image.open(path) as im:
            kind = f"{im.format} {im.mode}"
        print(f"{path.split('/' + split + '/')[1]},{kind},{d.max():.3f},{d.mean():.4f}")
        worst = max(worst, d.max())
    print(f"# {len(ours)} images, largest difference {worst:.3f} levels")


if __name__ == "__main__":
    main()
