#!/usr/bin/env python3
"""Single-thread throughput of CLIP preprocessing with Pillow (+ torchvision when installed).

The Pillow side of dev.jclip.image.PreprocessBenchmark: same images, same rounds, same report.
Usage: scripts/bench-preprocess-pillow.py [--size 224] [--rounds 7] [--warmup 3] [--jpeg-draft] FILE_OR_DIR...
(--jpeg-draft: im.draft("RGB", (R, R)) before loading, as jclip's --jpeg-draft.)

Without torchvision the transform is the same sequence written with Pillow and numpy
(Resize(R, BICUBIC) size rule, CenterCrop offsets, convert("RGB"), /255, normalise), which is
what torchvision does on PIL images.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array((0.48145466, 0.4578275, 0.40821073), dtype=np.float32).reshape(3, 1, 1)
STD = np.array((0.26862954, 0.26130258, 0.27577711), dtype=np.float32).reshape(3, 1, 1)
EXT = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


def make_transform(r):
    try:
        import torch
        from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

        torch.set_num_threads(1)
        return "torchvision", Compose([
            Resize(r, interpolation=InterpolationMode.BICUBIC), CenterCrop(r),
            lambda im: im.convert("RGB"), ToTensor(),
            Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ])
    except ImportError:
        pass

    def transform(im):
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(r * long / short)
        nw, nh = (r, new_long) if w <= h else (new_long, r)
        if (nw, nh) != (w, h):
            im = im.resize((nw, nh), Image.BICUBIC)
        top, left = int(round((nh - r) / 2.0)), int(round((nw - r) / 2.0))
        im = im.crop((left, top, left + r, top + r)).convert("RGB")
        a = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return (a - MEAN) / STD

    return "Pillow+numpy", transform


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--jpeg-draft", action="store_true")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()
    files = []
    for p in a.paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in names if n.lower().endswith(EXT)]
        else:
            files.append(p)
    files.sort()
    name, tf = make_transform(a.size)
    def load(f):
        im = Image.open(f)
        if a.jpeg_draft:
            im.draft("RGB", (a.size, a.size))  # a no-op for formats other than JPEG
        im.load()
        return im

    decoded = [load(f) for f in files]
    pixels = sum(im.size[0] * im.size[1] for im in decoded)
    print(f"{len(files)} images, {pixels / 1e6:.1f} megapixels in all, R={a.size}, {a.warmup} warm-up + "
          f"{a.rounds} measured rounds, 1 thread (Pillow {Image.__version__}, {name}{', draft' if a.jpeg_draft else ''})")

    e2e, dec, tr = [], [], []
    for r in range(-a.warmup, a.rounds):
        t0 = time.perf_counter()
        for f in files:
            tf(load(f))
        t1 = time.perf_counter()
        for f in files:
            load(f)
        t2 = time.perf_counter()
        for im in decoded:
            tf(im)
        t3 = time.perf_counter()
        if r >= 0:
            e2e.append(len(files) / (t1 - t0))
            dec.append(len(files) / (t2 - t1))
            tr.append(len(files) / (t3 - t2))
    for what, v in (("end to end (decode + transform)", e2e), ("decode only", dec),
                    ("transform only (resize, crop, normalise)", tr)):
        med = statistics.median(v)
        print(f"{what:<42} {med:8.1f} images/s per core (min {min(v):.1f}, max {max(v):.1f}), "
              f"{med * pixels / len(files) / 1e6:.1f} input MP/s")


if __name__ == "__main__":
    sys.exit(main())
