#!/usr/bin/env python3
"""Writes the image-decoding fixtures under Tests/Fixtures/images/ with PIL as the reference.

- Small PNGs in every colour type PIL writes (RGB, grey, palette, RGBA, 16-bit RGB, interlaced) and
  JPEGs (baseline 4:2:0, progressive, greyscale, 4:4:4), plus pil-pixels.safetensors holding what
  PIL's Image.open(f).convert("RGB") gives for each (U8 [H, W, 3], keyed by file name).
- bomb.png: a valid PNG header that claims 100000x100000 pixels over 1 MB of compressed zeros.
- cmyk.jpg: an Adobe CMYK JPEG, which lgap refuses (at the door, from its header alone).
- Tests/Fixtures/cifar10-test-dev-pil.txt: for each of the 9,000 ../shared test-dev JPEGs, its path and
  the SHA-256 of PIL's decoded RGB bytes — the JPEG parity test decodes every image and compares.

Run: $LGAP_PYTHON tools/goldens/make_image_goldens.py   (tools installed: pip install -e tools)
"""
import hashlib
import io
import struct
import tarfile
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from lgaptools import cifar, locations

ROOT = locations.repo()

OUT = ROOT / "Tests" / "Fixtures" / "images"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(11)

# A smooth image with some texture, so JPEG artefacts are realistic.
yy, xx = np.mgrid[0:23, 0:37]
base = np.stack([(xx * 7) % 256, (yy * 11) % 256, ((xx + yy) * 5) % 256], -1).astype(np.float64)
base = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
rgb = Image.fromarray(base)

files = {
    "rgb.png": lambda f: rgb.save(f, "PNG"),
    "gray.png": lambda f: rgb.convert("L").save(f, "PNG"),
    "palette.png": lambda f: rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save(f, "PNG"),
    "rgba.png": lambda f: Image.fromarray(np.concatenate([base, rng.integers(0, 256, base.shape[:2] + (1,), dtype=np.uint8)], -1), "RGBA").save(f, "PNG"),
    "baseline.jpg": lambda f: rgb.save(f, "JPEG", quality=75),
    "progressive.jpg": lambda f: rgb.save(f, "JPEG", quality=90, progressive=True),
    "gray.jpg": lambda f: rgb.convert("L").save(f, "JPEG", quality=80),
    "444.jpg": lambda f: rgb.save(f, "JPEG", quality=95, subsampling=0),
}
for name, write in files.items():
    with open(OUT / name, "wb") as f:
        write(f)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_raw(width, height, bit_depth, colour_type, rows, interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


# 16-bit RGB (PIL cannot write it, so it is assembled by hand; PIL reads it as 8-bit RGB).
h16, w16 = 5, 6
v16 = rng.integers(0, 65536, (h16, w16, 3), dtype=np.uint16)
raw = b"".join(b"\x00" + v16[y].astype(">u2").tobytes() for y in range(h16))
(OUT / "rgb16.png").write_bytes(png_raw(w16, h16, 16, 2, raw))
# Adam7-interlaced RGB, assembled by hand from the seven passes.
hi, wi = 9, 10
vi = rng.integers(0, 256, (hi, wi, 3), dtype=np.uint8)
passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
raw = b""
for y0, x0, dy, dx in passes:
    sub = vi[y0::dy, x0::dx]
    if sub.size:
        raw += b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))
(OUT / "interlaced.png").write_bytes(png_raw(wi, hi, 8, 2, raw, interlace=1))
# A header that claims 100000 x 100000 over 1 MB of compressed zero rows (a decompression bomb: it
# must be refused from the header, before any pixel memory is allocated).
ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
idat = zlib.compress(b"\x00" * (1 << 20), 9)
(OUT / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))

pixels = {}
for path in sorted(OUT.iterdir()):
    if path.suffix in (".png", ".jpg") and path.name != "bomb.png":
        pixels[path.name] = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
ppm = np.asarray(rgb)
(OUT / "rgb.ppm").write_bytes(b"P6\n# a comment\n37 23\n255\n" + ppm.tobytes())
pixels["rgb.ppm"] = torch.from_numpy(ppm.copy())
save_file(pixels, str(OUT / "pil-pixels.safetensors"))
rgb.convert("CMYK").save(OUT / "cmyk.jpg", "JPEG", quality=80)  # refused by lgap: not in pil-pixels

# CIFAR-10 test-dev: PIL's decoded pixels, as a digest per image.
lines = []
with tarfile.open(cifar.archive_path("test"), "r:gz") as tar:
    for m in tar:
        if m.isfile() and m.name.endswith(".jpg"):
            img = np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB"))
            lines.append(f"{m.name} {hashlib.sha256(img.tobytes()).hexdigest()}")
lines.sort()
(ROOT / "Tests" / "Fixtures" / "cifar10-test-dev-pil.txt").write_text("\n".join(lines) + "\n")
print(f"wrote {len(pixels)} image fixtures and {len(lines)} CIFAR-10 digests")
