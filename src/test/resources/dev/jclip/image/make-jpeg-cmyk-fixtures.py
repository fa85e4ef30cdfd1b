#!/usr/bin/env python3
"""Makes the 4-component JPEG fixtures of NativeJpegTest from synthetic content: an Adobe CMYK
file written by Pillow (transform 0) and an Adobe YCCK file (transform 2, 4:2:0) written by
libjpeg-turbo's tjCompress2 from packed CMYK (through ctypes; Debian package libturbojpeg0).
Prints what Pillow 9.4 (libjpeg-turbo 2.1.5) decodes them to: the mode, the Adobe transform and
the sha256 of numpy.asarray(Image.open(f)). Rerun only to change the fixtures; the test holds
the hashes."""
import ctypes
import hashlib

import numpy as np
from PIL import Image

h, w = 29, 43  # odd sizes: partial MCUs at the edges
y, x = np.mgrid[0:h, 0:w]
cmyk = np.stack([x * 5, (y * 8) % 256, ((x + y) * 7) % 256, (x * y) % 256], axis=-1).astype(np.uint8)

Image.fromarray(cmyk, "CMYK").save("synthetic-cmyk.jpg", quality=85)

tj = ctypes.CDLL("libturbojpeg.so.0")
tj.tjInitCompress.restype = ctypes.c_void_p
tj.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                           ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)), ctypes.POINTER(ctypes.c_ulong),
                           ctypes.c_int, ctypes.c_int, ctypes.c_int]
tj.tjFree.argtypes = [ctypes.c_void_p]
tj.tjDestroy.argtypes = [ctypes.c_void_p]
TJPF_CMYK, TJSAMP_420 = 11, 2
handle = tj.tjInitCompress()
buf = ctypes.POINTER(ctypes.c_ubyte)()
size = ctypes.c_ulong(0)
# TurboJPEG compresses packed CMYK into a YCCK JPEG (its documented behaviour).
assert tj.tjCompress2(handle, cmyk.tobytes(), w, 0, h, TJPF_CMYK, ctypes.byref(buf), ctypes.byref(size), TJSAMP_420, 85, 0) == 0
with open("synthetic-ycck.jpg", "wb") as f:
    f.write(ctypes.string_at(buf, size.value))
tj.tjFree(buf)
tj.tjDestroy(handle)

for name in ("synthetic-cmyk.jpg", "synthetic-ycck.jpg"):
    im = Image.open(name)
    print(name, im.mode, im.size, "adobe_transform", im.info.get("adobe_transform"),
          hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
