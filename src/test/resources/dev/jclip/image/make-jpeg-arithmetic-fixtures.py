#!/usr/bin/env python3
"""Makes the arithmetic-coded JPEG fixtures of NativeJpegTest: synthetic content written as PPM/PGM
by Pillow and encoded by cjpeg -arithmetic (Debian package libjpeg-turbo-progs, 2.1.5). Prints
what Pillow 9.4 (libjpeg-turbo 2.1.5) decodes them to: the mode and the sha256 of
numpy.asarray(Image.open(f)). Rerun only to change the fixtures; the test holds the hashes."""
import hashlib
import subprocess

import numpy as np
from PIL import Image

h, w = 45, 61  # odd sizes: partial MCUs at the edges
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 4, (y * 5) % 256, ((x * y) // 3) % 256], axis=-1).astype(np.uint8)
rgb[10:20, 30:50] = (250, 20, 20)  # saturated block: chroma edges
Image.fromarray(rgb, "RGB").save("/tmp/arith-src.ppm")
Image.fromarray(rgb[:, :, 1], "L").save("/tmp/arith-src.pgm")
jobs = {
    "synthetic-arithmetic.jpg": ["-quality", "85", "/tmp/arith-src.ppm"],
    "synthetic-arithmetic-progressive.jpg": ["-quality", "85", "-progressive", "/tmp/arith-src.ppm"],
    "synthetic-arithmetic-gray.jpg": ["-quality", "90", "/tmp/arith-src.pgm"],
}
for name, args in jobs.items():
    with open(name, "wb") as f:
        subprocess.run(["cjpeg", "-arithmetic", *args], stdout=f, check=True)
    im = Image.open(name)
    print(name, im.mode, im.size, hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
