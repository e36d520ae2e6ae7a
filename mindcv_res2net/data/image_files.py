"""Image files: find them, check them, decode them (Pillow), and choose MindSpore's or Pillow's decoder.

Every function names the file it cannot read: not a regular file, corrupt, truncated, or more pixels
than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb).
"""
import contextlib
import io
import os
import stat
import warnings
from typing import List

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class DatasetError(ValueError):
    """A dataset is missing, incomplete or unreadable."""


def is_regular_file(path: str) -> bool:
    """True for a regular file (after links); False for a FIFO, device, folder or broken link, which
    are never opened: reading a FIFO would wait forever."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def list_images(folder: str) -> List[str]:
    """Image files under ``folder`` (recursively, sorted, extensions matched case-insensitively); other
    entries with an image extension that are not regular files are skipped with a warning."""
    found = []
    for dirpath, dirnames, files in os.walk(folder):
        dirnames.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            if is_regular_file(path):
                found.append(path)
            else:
                warnings.warn(f"skipping {path}: not a regular file", stacklevel=2)
    return found


# What MindSpore's C++ decoder reads exactly as Pillow does (checked pixel for pixel); anything else
# (16-bit, CMYK, WebP, TIFF, GIF, BMP...) is decoded by Pillow in Python and handed over losslessly as BMP.
NATIVE_MODES = {"JPEG": ("L", "RGB"), "PNG": ("L", "LA", "P", "RGB", "RGBA")}
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
NATIVE, PILLOW = 0, 1


@contextlib.contextmanager
def open_image(path: str):
    """``PIL.Image.open(path)`` with one ``DatasetError`` naming a file that is not a regular file, does not
    decode, or has more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb)."""
    from PIL import Image, UnidentifiedImageError

    if not is_regular_file(path):
        raise DatasetError(f"cannot read image {path}: " + ("not a regular file" if os.path.exists(path)
                                                              else "file not found"))
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)  # an error below instead
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as img:
            if limit and img.width * img.height > limit:
                raise DatasetError(f"cannot read image {path}: {img.width}x{img.height} = {img.width * img.height} "
                                   f"pixels, more than Pillow's limit of {limit} (a decompression bomb?)")
            yield img
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from None


def scan_image(path: str) -> int:
    """Check one file before training and choose its decoder: ``NATIVE`` (MindSpore's C++ decoder reads the
    file bytes) or ``PILLOW``. Reads the header and the last bytes, and decodes a JPEG at 1/8 scale
    (libjpeg still decodes every entropy-coded block: a corrupt middle that the C++ decoder only warns
    about fails here as in the full decode of ``load_rgb``, which prediction uses); a file that does not
    end with its format's end marker is decoded in full: truncated files fail here, files with trailing
    bytes go to Pillow. Raises ``DatasetError`` naming an unreadable file or a decompression bomb."""
    with open_image(path) as img:
        fmt, mode, width, height = img.format, img.mode, img.width, img.height
        if fmt == "JPEG":
            img.draft(mode, (max(1, width // 8), max(1, height // 8)))
            img.load()
    if mode not in NATIVE_MODES.get(fmt, ()):
        return PILLOW
    marker = END_MARKERS[fmt]
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - len(marker)))
        if f.read() == marker:
            return NATIVE
    load_rgb(path)  # no end marker: truncated (raises) or trailing bytes (Pillow copes)
    return PILLOW


def encode_bmp(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the bytes of an uncompressed BMP file, as a 1-D uint8 array (lossless, no zlib)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="BMP")
    return np.frombuffer(buffer.getvalue(), np.uint8)


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_rgb(path: str) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 array; one clear error naming a file that is not a
    regular file, is corrupt, or has more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a
    decompression bomb). 16-bit images are scaled to 8 bits (x 255/65535), not clipped."""
    with open_image(path) as img:
        if img.mode in _SIXTEEN_BIT_MODES:
            grey = np.round(np.asarray(img, np.float64) * (255.0 / 65535.0))
            return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        return np.asarray(img.convert("RGB"))
