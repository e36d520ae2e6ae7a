"""Image files: find them, check them by decoding, decode them (Pillow; libjpeg-turbo through simplejpeg for
the corrupt-data check of JPEGs and their decoding at a reduced DCT scale), and choose MindSpore's or Pillow's
decoder.

Every function names the file it cannot read: not a regular file, corrupt, truncated, more pixels than
Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb), a side over ``MAX_SIDE``, or too elongated for
the evaluation resize (``MAX_RESIZED_SIDE``).
"""
import contextlib
import io
import os
import stat
import warnings
from typing import List, NamedTuple, Optional

import numpy as np

from ..utils.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")

# No side of an image in the transforms may grow beyond this many pixels. Evaluation resizes the shorter
# side to ``resize`` (256 at 224 px), so the longer side becomes resize x (long / short): an image more
# elongated than MAX_RESIZED_SIDE / resize (50:1 at 224 px) is refused, as a 5.6 KB 20000x1 JPEG would
# otherwise ask for gigabytes.
MAX_RESIZED_SIDE = 12800
# No side may be longer than libpng's limit: MindSpore's decoders refuse longer ones, whatever the format
# (OpenCV's own limit, 1,048,576 px, holds for the BMP that Pillow's pixels are handed over as)
MAX_SIDE = 1_000_000


class DatasetError(UserError):
    """A dataset is missing, incomplete or unreadable."""


class DataWarning(UserWarning):
    """Something about the user's data worth a line in the training log (images left out, one class)."""


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
JPEG_FORMATS = ("JPEG", "MPO")  # Pillow's names for a JPEG stream (MPO: phone photos with a second image)
NATIVE, PILLOW = 0, 1


def check_shape(path: str, width: int, height: int, *, resize: Optional[int]) -> None:
    """``DatasetError`` naming ``path`` when a side is longer than ``MAX_SIDE`` px, or when its evaluation
    resize (shorter side to ``resize`` px) would make the longer side more than ``MAX_RESIZED_SIDE`` px
    (None: no resize, no such bound)."""
    short, long = min(width, height), max(width, height)
    if long > MAX_SIDE:
        raise DatasetError(f"cannot use image {path}: {width}x{height} px, a side longer than {MAX_SIDE:,} px, "
                           "which MindSpore's decoders refuse")
    if resize and resize * long > MAX_RESIZED_SIDE * short:
        raise DatasetError(f"cannot use image {path}: {width}x{height} px; evaluation resizes its shorter side to "
                           f"{resize} px, which would make the longer side {resize * long // short} px, more than "
                           f"{MAX_RESIZED_SIDE} (at most {MAX_RESIZED_SIDE / resize:.4g}:1)")


@contextlib.contextmanager
def open_image(path: str, resize: Optional[int] = None):
    """``PIL.Image.open(path)`` with one ``DatasetError`` naming a file that is not a regular file, does not
    decode, has more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb), or whose
    shape ``resize`` refuses (``check_shape``)."""
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
            check_shape(path, img.width, img.height, resize=resize)
            yield img
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from None


def libjpeg_decode(data: bytes, path: str, *, min_width: int = 1, min_height: int = 1) -> Optional[np.ndarray]:
    """A JPEG stream decoded by libjpeg-turbo (simplejpeg) at the smallest DCT scale, 1/1 to 1/8, that keeps
    it at least ``min_width`` x ``min_height`` (default: 1/8, which still entropy-decodes every block), as
    (H', W', 3) uint8 RGB.

    Every libjpeg warning is an error, which MindSpore's decoder and Pillow let pass with grey or garbled
    pixels: a corrupt or cut entropy-coded segment ("Corrupt JPEG data: premature end of data segment",
    "bad Huffman code"), and also "N extraneous bytes before marker 0xd9", which libjpeg cannot tell
    from corrupt data that desynchronised its decoder. Raises ``DatasetError`` naming ``path``. None:
    libjpeg-turbo cannot decode this kind this way (lossless JPEG, or a fatal error before any warning):
    Pillow decides.
    """
    import simplejpeg

    size = dict(min_width=min_width, min_height=min_height)
    try:
        return simplejpeg.decode_jpeg(data, strict=True, **size)
    except ValueError as exc:
        message = str(exc)  # libjpeg's last warning, or its fatal error
    try:
        simplejpeg.decode_jpeg(data, strict=False, **size)  # raises on a fatal error with no warning before it
    except ValueError:
        return None
    raise DatasetError(f"cannot decode image {path}: {message}")


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _pillow_rgb(img) -> np.ndarray:
    """A Pillow image as (H, W, 3) uint8 RGB; 16-bit images are scaled to 8 bits (x 255/65535), not clipped."""
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = np.round(np.asarray(img, np.float64) * (255.0 / 65535.0))
        return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    return np.asarray(img.convert("RGB"))


def _cpp_decodes_as_pillow(path: str, pixels: np.ndarray) -> bool:
    """Whether MindSpore's C++ decoder (the pipeline's; libpng for a PNG) reads ``path`` to exactly ``pixels``.
    Raises ``DatasetError`` when it refuses the file, which Pillow read: libpng checks what Pillow does not
    (every CRC, the zlib stream's own checksum), so the file is damaged."""
    from mindspore.dataset import vision

    try:
        decoded = vision.Decode()(np.fromfile(path, np.uint8))
    except RuntimeError:
        raise DatasetError(f"cannot decode image {path}: MindSpore's decoder (libpng) refuses it although Pillow "
                           "reads it: a bad checksum or damaged data (libpng's reason is on stderr)") from None
    return np.array_equal(decoded, pixels)


def _ends_with_marker(path: str, fmt: str) -> bool:
    marker = END_MARKERS[fmt]
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - len(marker)))
        return f.read() == marker


class Scanned(NamedTuple):
    """What ``scan_file`` found in one file: its decoder ``kind`` (``NATIVE`` or ``PILLOW``), its ``width`` and
    ``height`` in px, and ``scalable``: a JPEG that MindSpore's decoder reads, which ``--reduced_decode`` may
    decode at a reduced DCT scale."""

    kind: int
    width: int
    height: int
    scalable: bool


def scan_file(path: str, resize: Optional[int] = None) -> Scanned:
    """Check one file by decoding it, before training, and choose its decoder: ``NATIVE`` (MindSpore's C++
    decoder reads the file bytes) or ``PILLOW`` (decoded by Pillow, handed over as BMP); see ``Scanned``.

    The header first: Pillow's pixel limit and the evaluation resize's bound (``check_shape``). A JPEG is
    decoded by libjpeg-turbo at 1/8 scale, every warning an error (``libjpeg_decode``); a grey or RGB one
    that ends with its end marker goes to MindSpore's decoder (the same libjpeg-turbo). Every other file is
    decoded in full by Pillow; a PNG (8-bit) that MindSpore's decoder refuses is damaged (see
    ``_cpp_decodes_as_pillow``), and one goes to that decoder only when it gives Pillow's pixels; the rest
    goes to Pillow (trailing bytes, CMYK, 16-bit, WebP, lossless JPEG...). Raises ``DatasetError`` naming
    an unreadable, corrupt or refused file.
    """
    with open_image(path, resize) as img:
        fmt, mode, (width, height) = img.format, img.mode, img.size
        libjpeg = fmt in JPEG_FORMATS and libjpeg_decode(_read_bytes(path), path) is not None
        native = mode in NATIVE_MODES.get(fmt, ()) and (fmt == "PNG" or libjpeg)
        whole = native and _ends_with_marker(path, fmt)  # else bytes after the end marker: Pillow copes
        if fmt == "JPEG" and whole:
            return Scanned(NATIVE, width, height, True)
        img.load()  # in full, as Pillow will decode it in training (or as MindSpore's decoder must)
        pillow = _pillow_rgb(img) if native and fmt == "PNG" else None
    if pillow is not None and _cpp_decodes_as_pillow(path, pillow) and whole:
        return Scanned(NATIVE, width, height, False)
    return Scanned(PILLOW, width, height, False)


def scan_image(path: str, resize: Optional[int] = None) -> int:
    """The decoder ``scan_file`` chooses for ``path``: ``NATIVE`` or ``PILLOW``."""
    return scan_file(path, resize).kind


def encode_bmp(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> the bytes of an uncompressed BMP file, as a 1-D uint8 array (lossless, no zlib)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="BMP")
    return np.frombuffer(buffer.getvalue(), np.uint8)


def reduction(short_side: int, need: int) -> int:
    """The largest ``d`` of libjpeg's power-of-two DCT scalings, 8, 4, 2, with ``short_side / d >= need`` (a
    1/d-scale decode still has ``need`` px along that side), else 1 (no reduction)."""
    return next((d for d in (8, 4, 2) if short_side >= need * d), 1)


def decode_jpeg_scaled(data, path: str, *, width: int, height: int, denominator: int) -> Optional[np.ndarray]:
    """A ``width`` x ``height`` JPEG stream decoded by libjpeg-turbo at 1/``denominator`` scale (sides rounded
    up): (H', W', 3) uint8 RGB, or None where libjpeg-turbo cannot decode it; every libjpeg warning is a
    ``DatasetError`` naming ``path`` (``libjpeg_decode``)."""
    return libjpeg_decode(data, path, min_width=-(-width // denominator), min_height=-(-height // denominator))


def decode_with_pillow(data, path: str) -> np.ndarray:
    """An encoded image in memory (PNG, BMP...) decoded in full by Pillow: (H, W, 3) uint8 RGB, as
    ``load_rgb``; ``DatasetError`` naming ``path`` when it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return _pillow_rgb(img)
    except UnidentifiedImageError:
        raise DatasetError(f"cannot decode image {path}: not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from None


def load_rgb(path: str, resize: Optional[int] = None, *, reduce_to: Optional[int] = None) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 array with Pillow; one clear error naming a file that is
    not a regular file, is corrupt (a JPEG: any libjpeg warning, see ``libjpeg_decode``), has more pixels
    than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb), or whose shape ``resize`` refuses
    (``check_shape``). 16-bit images are scaled to 8 bits (x 255/65535), not clipped.

    ``reduce_to`` (px): a JPEG that the pipeline hands to MindSpore's decoder (grey or RGB, ending with its
    end marker) and whose shorter side is at least twice ``reduce_to`` is decoded by libjpeg-turbo at the
    largest DCT reduction that keeps that side at least ``reduce_to`` (``reduction``), as the pipeline's
    ``--reduced_decode`` does."""
    with open_image(path, resize) as img:
        if img.format in JPEG_FORMATS:
            native = img.format == "JPEG" and img.mode in NATIVE_MODES["JPEG"] and _ends_with_marker(path, "JPEG")
            d = reduction(min(img.size), reduce_to) if reduce_to and native else 1
            # the corrupt-data check, at 1/8 unless the pixels are used
            scaled = decode_jpeg_scaled(_read_bytes(path), path, width=img.width, height=img.height,
                                        denominator=d if d > 1 else 8)
            if d > 1 and scaled is not None:
                return scaled
        return _pillow_rgb(img)
