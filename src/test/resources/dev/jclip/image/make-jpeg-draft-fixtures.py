#!/usr/bin/env python3
"""Makes the reduced-scale (draft) JPEG fixtures of JpegDraftTest from synthetic content and writes
jpeg-draft-expected.tsv: for each file and draft size, what Pillow 9.4 (libjpeg-turbo 2.1.5) gives
after Image.open(f); im.draft("RGB", (d, d)): the mode, the decoded size, the sha256 of
numpy.asarray(im), and the sha256 of the RGB bytes of CLIP's transform of it at resolution d
(torchvision 0.14's Resize(d, BICUBIC) + CenterCrop(d) + convert("RGB"), written out below with
Pillow so the script needs no torchvision). Rerun only to change the fixtures."""
import hashlib

import numpy as np
from PIL import Image

rng = np.random.default_rng(20261127)


def content(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([
        128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0),
        128 + 90 * np.sin((x + 2 * y) / 31.0),
        (x * 255.0 / w + y * 128.0 / h) % 256,
    ], axis=-1)
    base += rng.normal(0, 6, base.shape)  # texture, so the high DCT coefficients are not all zero
    return np.clip(base, 0, 255).astype(np.uint8)


def save(name, w, h, **kw):
    im = Image.fromarray(content(w, h), "RGB")
    mode = kw.pop("mode", "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    im.save(name, quality=kw.pop("quality", 80), **kw)
    return name


files = [
    save("draft-420.jpg", 641, 483, subsampling=2),  # odd sizes: partial MCUs, ceil division
    save("draft-422.jpg", 500, 333, subsampling=1),
    save("draft-444.jpg", 333, 500, subsampling=0),  # portrait
    save("draft-progressive.jpg", 517, 389, subsampling=2, progressive=True),
    save("draft-gray.jpg", 451, 300, mode="L"),
    save("draft-cmyk.jpg", 260, 190, mode="CMYK"),
]
drafts = [0, 24, 50, 64, 100, 130, 250, 700]


def clip_rgb(im, size):
    w, h = im.size
    if w <= h:
        ow, oh = size, int(size * h / w)
    else:
        ow, oh = int(size * w / h), size
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    top = int(round((oh - size) / 2.0))
    left = int(round((ow - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    return np.asarray(im.convert("RGB")).tobytes()


with open("jpeg-draft-expected.tsv", "w") as out:
    out.write("# file\tdraft\tmode\twidth\theight\tdecoded_sha256\tclip_rgb_sha256 (resolution = draft, or 224 for draft 0)\n")
    for f in files:
        for d in drafts:
            im = Image.open(f)
            if d:
                im.draft("RGB", (d, d))
            im.load()
            dec = hashlib.sha256(np.asarray(im).tobytes()).hexdigest()
            rgb = hashlib.sha256(clip_rgb(im, d or 224)).hexdigest()
            out.write(f"{f}\t{d}\t{im.mode}\t{im.size[0]}\t{im.size[1]}\t{dec}\t{rgb}\n")
