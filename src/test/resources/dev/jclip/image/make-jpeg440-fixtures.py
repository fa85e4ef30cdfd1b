#!/usr/bin/env python3
"""Makes the 4:4:0 JPEG fixtures of ImageDecoderTest: synthetic content saved by Pillow as 4:2:2
and rotated losslessly by jpegtran (Debian package libjpeg-turbo-progs), which turns 4:2:2 into
4:4:0 as phone photos rotated in place are. Prints what Pillow 9.4 (libjpeg-turbo 2.1.5) decodes
them to: the sha256 of numpy.asarray(Image.open(f))."""
import hashlib
import subprocess

import numpy as np
from PIL import Image

h, w = 37, 50  # odd sizes: partial MCUs at the edges
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 5, (y * 7) % 256, ((x + y) * 11) % 256], axis=-1).astype(np.uint8)
rgb[8:14, 10:40] = (20, 200, 240)  # saturated bars: vertical chroma edges
for name, progressive in (("synthetic-440.jpg", False), ("synthetic-440-progressive.jpg", True)):
    Image.fromarray(rgb, "RGB").save("/tmp/src422.jpg", quality=90, subsampling=1, progressive=progressive)
    with open(name, "wb") as f:
        extra = ["-progressive"] if progressive else []
        subprocess.run(["jpegtran", "-rotate", "90", *extra, "/tmp/src422.jpg"], stdout=f, check=True)
    im = Image.open(name)
    print(name, im.mode, im.size, im.info.get("progressive", 0), [l[1:3] for l in im.layer], hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
