"""CIFAR-10 from the JPEG archives in ../shared/data/cifar10.

`load(split)` returns (images uint8 [N, 32, 32, 3], labels int64 [N], names list[str]) in a fixed
order (class index, then file name), decoded with PIL exactly as the reference pipeline decodes them.
The decoded arrays are cached as .npz under $LGAP_CACHE (default ~/.cache/lgap) keyed by the
archive's SHA-256, so a changed archive is never served from a stale cache.
"""
import hashlib
import io
import os
import tarfile

import numpy as np
from PIL import Image

from . import locations

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

SHARED = locations.data_root()
ARCHIVES = {"train": "train.tar.gz", "test": "test-dev.tar.gz"}


class DataError(RuntimeError):
    pass


def archive_path(split):
    if split not in ARCHIVES:
        raise DataError(f"unknown split {split!r}; expected one of {sorted(ARCHIVES)}")
    path = SHARED / "data" / "cifar10" / ARCHIVES[split]
    if not path.is_file():
        raise DataError(f"CIFAR-10 archive missing: {path} (set LGAP_DATA to a folder laid out like "
                        f"../shared)")
    return path


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir():
    d = locations.cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    return d


def load(split):
    path = archive_path(split)
    digest = _sha256(path)
    cached = cache_dir() / f"cifar10-{split}-{digest[:16]}.npz"
    if cached.is_file():
        z = np.load(cached)
        return z["images"], z["labels"], list(z["names"])
    entries = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".jpg"):
                    continue
                parts = member.name.split("/")
                if len(parts) != 3 or parts[1] not in CLASSES:
                    raise DataError(f"{path}: unexpected member {member.name}")
                data = tar.extractfile(member).read()
                entries.append((CLASSES.index(parts[1]), member.name, data))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{path}: corrupt or truncated archive ({e})") from e
    if not entries:
        raise DataError(f"{path}: no JPEG images found")
    entries.sort(key=lambda e: (e[0], e[1]))
    images = np.empty((len(entries), 32, 32, 3), dtype=np.uint8)
    for i, (_, name, data) in enumerate(entries):
        try:
            img = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception as e:  # PIL raises many types for corrupt data
            raise DataError(f"{path}: cannot decode {name} ({e})") from e
        if img.size != (32, 32):
            raise DataError(f"{path}: {name} is {img.size}, expected 32x32")
        images[i] = np.asarray(img)
    labels = np.array([e[0] for e in entries], dtype=np.int64)
    names = [e[1] for e in entries]
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, images=images, labels=labels, names=np.array(names))
    os.replace(tmp, cached)
    return images, labels, names


def even_indices(n, total, offset=0):
    """The attacks' deterministic subset: n indices spread evenly over `total` images (classes balanced,
    since images are sorted by class), shifted by `offset` (as tools/attack/pgd.py and bpda_eot.py pick them)."""
    return (np.linspace(0, total - 1, n).round().astype(int) + offset) % total
