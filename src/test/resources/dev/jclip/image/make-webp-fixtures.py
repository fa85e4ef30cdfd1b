#!/usr/bin/env python3
"""Makes the WebP fixtures of ImageDecoderWebpTest from synthetic content (no external image),
and prints what Pillow 9.4 (libwebp 1.2.4, Debian 12) decodes them to: mode and the sha256 of
numpy.asarray(Image.open(f)). Rerun only to change the fixtures; the test holds the hashes."""
import hashlib

import numpy as np
from PIL import Image

h, w = 48, 64
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 4, y * 5, (x * y) % 256], axis=-1).astype(np.uint8)
rgb[10:20, 30:50] = (250, 20, 20)  # a saturated block: chroma edges stress the upsampling
alpha = np.clip((x - 16) * 8, 0, 255).astype(np.uint8)
Image.fromarray(rgb, "RGB").save("synthetic-q80.webp", quality=80)
Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save("synthetic-alpha-q80.webp", quality=80)
Image.fromarray(rgb, "RGB").save("synthetic-lossless.webp", lossless=True)
for f in ("synthetic-q80.webp", "synthetic-alpha-q80.webp", "synthetic-lossless.webp"):
    im = Image.open(f)
    print(f, im.mode, im.size, hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
