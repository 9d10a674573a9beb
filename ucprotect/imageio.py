"""Reading and writing users' photos without changing anything but the pixels we perturb.

A photo is decoded once into a :class:`Photo`: its pixels in their native bit depth and colour model
(RGB, grayscale, CMYK, 8 or 16 bit), alpha kept aside untouched, EXIF orientation already applied, plus
the metadata needed to write it back (format, ICC profile, EXIF, DPI). Writes are atomic: a temporary
file beside the target is renamed into place only once it is complete.
"""
from __future__ import annotations

import errno
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, OutputError, UcprotectError

# Formats we read and write. Pillow reads more; these are the still-image formats we round-trip.
FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "BMP": (".bmp",),
}
IMAGE_EXTENSIONS = {ext for exts in FORMAT_EXTENSIONS.values() for ext in exts}
# Photo formats a user may well expect to be protected but that are not read: phones' HEIC, AVIF, GIF, JPEG 2000,
# JPEG XL, Photoshop and camera raw files. Left out of a run, they are named in a warning, never passed over quietly.
UNSUPPORTED_PHOTO_EXTENSIONS = {".heic", ".heif", ".avif", ".gif", ".apng", ".jp2", ".j2k", ".jxl", ".psd", ".mpo",
                                ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
                                ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".erf", ".kdc", ".mrw", ".raw", ".rwl", ".iiq"}
OUTPUT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
METADATA_POLICIES = ("safe", "keep", "strip")
DEFAULT_MAX_PIXELS = 100_000_000  # ~10k x 10k; raise with --max-pixels
TEMP_MARKER = ".ucprotect-tmp"

_GPS_IFD = ExifTags.IFD.GPSInfo
_ORIENTATION = ExifTags.Base.Orientation


@dataclass
class Photo:
    """A decoded photo. ``pixels`` is HxWxC (C = 3 for RGB, 1 for gray, 4 for CMYK), uint8 or uint16."""

    path: Path
    format: str
    colour: str  # "rgb", "gray" or "cmyk"
    pixels: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    exif: Image.Exif | None = None
    info: dict = field(default_factory=dict)
    mode: str = "RGB"  # Pillow mode the output is written in
    image: Image.Image | None = None  # the decoded image itself, only when asked for (it doubles the memory)

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after orientation."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def rgb8(self) -> np.ndarray:
        """The photo as 8-bit RGB (HxWx3), the form the models see and the metrics use."""
        return to_rgb8(self.colour, self.pixels)


def to_rgb8(colour: str, pixels: np.ndarray) -> np.ndarray:
    """Convert native pixels to 8-bit RGB the way Pillow would display them."""
    p = pixels
    if p.dtype == np.uint16:
        p = np.round(p.astype(np.float32) / 257.0).astype(np.uint8)
    if colour == "rgb":
        return np.ascontiguousarray(p)
    if colour == "gray":
        return np.ascontiguousarray(np.repeat(p, 3, axis=2))
    if colour == "cmyk":  # Pillow's CMYK->RGB: R = (255 - C) * (255 - K) / 255
        cmy = p[..., :3].astype(np.uint16)
        k = p[..., 3:4].astype(np.uint16)
        return ((255 - cmy) * (255 - k) // 255).astype(np.uint8)
    raise ValueError(colour)


def find_images(root: Path, exclude: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Return (image files, other files) under ``root`` (a file or a folder, recursive), sorted.

    Hidden files and our own temporary files are passed over; files with an image extension are
    candidates even if they turn out not to be images (they are then reported as failures). Linked folders
    are searched like any other (a link to a folder already searched, e.g. a loop, is not searched twice),
    except into ``exclude`` (protect's output folder: its own outputs are never inputs, nor are linked files to them).
    """
    root = Path(root)
    if root.is_file():
        return [root], []
    images, others = [], []
    seen = {os.path.realpath(root)}  # linked folders are followed, each real folder once (a link loop ends there)
    fence = os.path.realpath(exclude) if exclude is not None else None

    def inside_fence(real: str) -> bool:  # ``real``: a path already resolved by os.path.realpath
        return fence is not None and (real == fence or real.startswith(fence + os.sep))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        kept = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real not in seen and not inside_fence(real):
                seen.add(real)
                kept.append(d)
        dirnames[:] = kept
        for name in sorted(filenames):
            if name.startswith(".") or TEMP_MARKER in name:
                continue
            path = Path(dirpath) / name
            if path.is_symlink() and inside_fence(os.path.realpath(path)):  # a linked file to one of our own outputs
                continue
            (images if path.suffix.lower() in IMAGE_EXTENSIONS else others).append(path)
    return images, others


_REMEDY = "; copy it again from its source or re-export it"  # what a user can do about a damaged file


def open_checked(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` lazily and check it is a single still image within the pixel limit."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise _err(path, "the file is empty (0 bytes)" + _REMEDY)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except PermissionError:
        raise _err(path, "permission denied: check the file's permissions") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if "exceeds limit" in str(e) or "decompression bomb" in str(e).lower():
            raise _err(path, f"the image is too large to decode safely; raise --max-pixels if it is genuine") from None
        raise _err(path, "not an image Pillow can read (corrupt, or not an image at all)" + _REMEDY) from None
    except OSError as e:
        raise _err(path, f"cannot read the file ({e.strerror or e})" + _REMEDY) from None
    if img.format not in FORMAT_EXTENSIONS:
        img.close()
        raise _err(path, f"format {img.format} is not supported (JPEG, PNG, WebP, TIFF and BMP are)")
    if getattr(img, "n_frames", 1) > 1:
        img.close()
        raise _err(path, "animated or multi-page images are not supported; export the frame you want as a still image")
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise _err(path, f"{w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,}; raise --max-pixels if the image is genuine")
    return img


def load_photo(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, keep_image: bool = False) -> Photo:
    """Decode ``path`` fully into a :class:`Photo` with EXIF orientation applied to the pixels; with
    ``keep_image``, the Pillow image the pixels came from is kept too (the metrics reuse it)."""
    path = Path(path)
    img = open_checked(path, max_pixels)
    fmt = img.format
    info = dict(img.info)
    if fmt == "WEBP":  # Pillow does not say whether a WebP is lossless; its first chunk does
        with open(path, "rb") as fh:
            info["lossless"] = fh.read(16)[12:16] == b"VP8L"
    try:
        exif = img.getexif()
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise _err(path, f"the image data is corrupt or truncated ({e})" + _REMEDY) from None
    alpha = None
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if ("transparency" in img.info or mode == "PA") else "RGB")
        mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A")).copy()
        img = img.convert("RGB" if mode == "RGBA" else "L")
        mode = img.mode
    if mode == "L":
        colour, pixels = "gray", np.asarray(img)[..., None]
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise _err(path, f"{mode} pixel values outside 0..65535 are not supported")
        colour, pixels, mode = "gray", arr.astype(np.uint16)[..., None], "I;16"
    elif mode == "CMYK":
        colour, pixels = "cmyk", np.asarray(img)
    elif mode == "RGB":
        colour, pixels = "rgb", np.asarray(img)
    else:  # YCbCr, LAB, HSV, RGBX, F, ...: our output is RGB
        img = img.convert("RGB")
        colour, pixels, mode = "rgb", np.asarray(img), "RGB"
    return Photo(
        path=path,
        format=fmt,
        colour=colour,
        pixels=np.ascontiguousarray(pixels),
        alpha=alpha,
        icc_profile=info.get("icc_profile"),
        exif=exif,
        info=info,
        mode=mode,
        image=img if keep_image else None,
    )


def load_thumbnail(path: Path, short_side: int, max_pixels: int = DEFAULT_MAX_PIXELS, margin: float = 2.0) -> Image.Image:
    """Decode ``path`` quickly to 8-bit RGB with its short side ``short_side`` (orientation applied).

    JPEGs are decoded at reduced scale (DCT scaling by 1/2, 1/4 or 1/8) as long as at least ``margin`` x
    ``short_side`` remains, then resized: far cheaper than a full decode. `protect` feeds the backbone
    with margin 1 (the cheapest decode that covers 224 px); training and `verify` keep 2, so a JPEG and a
    PNG of the same picture load alike at victim sizes.
    """
    img = open_checked(path, max_pixels)
    try:
        if img.format == "JPEG":
            w, h = img.size
            scale = min(w, h) / (short_side * margin)
            if scale >= 2:  # Pillow picks the largest DCT reduction that keeps at least the requested size
                img.draft(img.mode, (math.ceil(w / scale), math.ceil(h / scale)))
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise _err(path, f"the image data is corrupt or truncated ({e})" + _REMEDY) from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = Image.fromarray((np.asarray(img).astype(np.float32) / 257.0).clip(0, 255).astype(np.uint8))
    if img.mode != "RGB":
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "PA", "LA") else img.convert("RGB")
    return resize_short_side(img, short_side)


def resize_short_side(img: Image.Image, short_side: int) -> Image.Image:
    """Bicubic resize so the short side is ``short_side``, aspect kept: how every thumbnail is made."""
    w, h = img.size
    scale = short_side / min(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)


def centre_square(img: Image.Image, size: int) -> Image.Image:
    """Short side resized to ``size`` (if it is not already), then the centre ``size`` x ``size`` square."""
    w, h = img.size
    s = size / min(w, h)
    if (w, h) != (round(w * s), round(h * s)):
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BICUBIC)
        w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_square(path: Path, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``size`` x ``size`` x 3 uint8 centre square of a photo (fast thumbnail decode); what models train on."""
    return np.array(centre_square(load_thumbnail(path, size, max_pixels), size))


def clean_exif(exif: Image.Exif | None, policy: str) -> bytes | None:
    """EXIF bytes for the output under a metadata policy.

    ``safe`` keeps camera EXIF but drops GPS and the embedded thumbnail; ``keep`` keeps GPS too;
    ``strip`` writes none. Orientation is always reset to 1: it has been applied to the pixels.
    """
    if policy not in METADATA_POLICIES:
        raise ValueError(policy)
    if policy == "strip" or exif is None or len(exif) == 0:
        return None
    try:
        out = Image.Exif()
        out.load(exif.tobytes() if not isinstance(exif, bytes) else exif)
        for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.Interop) + ((_GPS_IFD,) if policy == "keep" else ()):
            out.get_ifd(ifd)  # loaded sub-IFDs are written back; Pillow never writes IFD1 (the thumbnail)
        if policy != "keep":
            out.pop(_GPS_IFD, None)
        if _ORIENTATION in out:
            out[_ORIENTATION] = 1
        return out.tobytes()
    except Exception:  # malformed EXIF: write none rather than fail the photo
        return None


def photo_to_image(photo: Photo, pixels: np.ndarray) -> Image.Image:
    """Build a Pillow image in the photo's own mode from (perturbed) native pixels, alpha re-attached."""
    if photo.colour == "gray":
        arr = pixels[..., 0]
        img = Image.fromarray(np.ascontiguousarray(arr.astype(np.uint16 if photo.mode == "I;16" else np.uint8)))
    elif photo.colour == "cmyk":
        arr = np.ascontiguousarray(pixels.astype(np.uint8))
        img = Image.frombytes("CMYK", (arr.shape[1], arr.shape[0]), arr.tobytes())
    else:
        img = Image.fromarray(np.ascontiguousarray(pixels.astype(np.uint8, copy=False)))
    if photo.alpha is not None:
        a = Image.fromarray(np.ascontiguousarray(photo.alpha))
        img = Image.merge("LA" if img.mode == "L" else "RGBA", (*img.split(), a)) if img.mode in ("L", "RGB") else img
    return img


def save_photo(
    photo: Photo,
    pixels: np.ndarray,
    dest: Path,
    fmt: str | None = None,
    quality: int = 95,
    metadata: str = "safe",
    image: Image.Image | None = None,
) -> Path:
    """Atomically write perturbed ``pixels`` to ``dest`` in ``fmt`` (default: the input's format).

    The file appears at ``dest`` only once fully written and flushed; on any error the temporary
    file is removed and an :class:`ImageError` names the target. ``image``: ``photo_to_image(photo, pixels)``
    if the caller has built it already.
    """
    fmt = (fmt or photo.format).upper()
    img = image if image is not None else photo_to_image(photo, pixels)
    kwargs: dict = {}
    if photo.icc_profile and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = photo.icc_profile
    exif = clean_exif(photo.info.get("exif") or photo.exif, metadata)
    if exif and fmt in ("JPEG", "PNG", "WEBP"):  # TIFF keeps its tags in its own IFD; EXIF is not carried
        kwargs["exif"] = exif
    if "dpi" in photo.info and fmt in ("JPEG", "PNG", "TIFF"):
        kwargs["dpi"] = photo.info["dpi"]
    if fmt == "JPEG":
        if img.mode in ("RGBA", "LA"):
            raise _err(dest, "the image has transparency, which JPEG cannot store: use --format png or webp")
        if img.mode == "I;16":
            raise _err(dest, "16-bit images cannot be stored as JPEG: use --format png")
        kwargs.update(quality=quality, subsampling=0, optimize=False)
    elif fmt == "WEBP":
        if img.mode == "I;16":
            raise _err(dest, "16-bit images cannot be stored as WebP: use --format png")
        if img.mode == "CMYK":
            img = img.convert("RGB")
        kwargs.update(quality=quality, method=4, lossless=bool(photo.format == "WEBP" and photo.info.get("lossless")))
    elif fmt == "PNG":
        if img.mode == "CMYK":
            img = img.convert("RGB")
    elif fmt == "TIFF":
        compression = photo.info.get("compression")
        if compression in ("tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "raw"):
            kwargs["compression"] = compression
    elif fmt == "BMP":
        if img.mode in ("CMYK", "I;16"):
            raise _err(dest, f"{img.mode} images cannot be stored as BMP: use --format png")
    return write_atomic(dest, lambda fh: img.save(fh, format=fmt, **kwargs),
                        rerun=" (finished files are kept and skipped)", option="--out", error=ImageError)


def write_atomic(dest: Path, write: Callable[[BinaryIO], object], rerun: str = "", option: str = "",
                 error: type[UcprotectError] | None = None) -> Path:
    """Write ``dest`` through a temporary file in its folder, renamed into place once complete, so that an
    interruption or a full disk never leaves a half-written file (photos, reports, plots, weights alike). OS errors
    become one ``error`` (:class:`ImageError` for photos, :class:`OutputError` otherwise) naming ``dest`` and what to
    do; ``option`` names the flag that chose the place, ``rerun`` what a re-run keeps."""
    dest, error = Path(dest), error or OutputError
    for_option = f" for {option}" if option else ""

    def fail(reason: str) -> UcprotectError:
        return error(f"{dest}: {reason}")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_MARKER, dir=dest.parent)
        set_default_permissions(tmp)  # mkstemp makes owner-only files; outputs get normal permissions
    except OSError as e:
        raise fail(f"cannot create the output there ({e.strerror or e}); check that {dest.parent} "
                   "is a writable folder (not a file) and the disk is not full") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            raise fail(f"disk full: free some space and re-run{rerun}") from None
        if isinstance(e, PermissionError):
            raise fail(f"permission denied writing the output: choose a writable place{for_option}") from None
        if isinstance(e, IsADirectoryError):
            raise fail(f"a folder of that name is in the way: move it, or choose another name{for_option}") from None
        if isinstance(e, OSError):
            raise fail(f"cannot write the output ({e.strerror or e})") from None
        raise
    return dest


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def set_default_permissions(path) -> None:
    """Give a file the permissions an ordinary new file gets (0666 minus the umask).

    Temp-file helpers (mkstemp, safetensors) create owner-only files; a protected photo or a shared
    weights file must be readable like anything else the user writes.
    """
    os.chmod(path, 0o666 & ~_UMASK)


def names_fold_case(folder: Path) -> bool:
    """Whether ``folder``'s file system takes b.JPG and b.jpg for one name (macOS and Windows by default), so that
    two outputs differing only in case would overwrite each other. False where the folder cannot be written."""
    probe = Path(folder) / f".case-probe{TEMP_MARKER}"
    try:
        probe.write_bytes(b"")
        try:
            return (probe.parent / probe.name.upper()).exists()
        finally:
            probe.unlink()
    except OSError:
        return False


def remove_stale_temp_files(root: Path, min_age_s: float = 3600.0) -> int:
    """Delete temporary files an interrupted earlier run left under ``root``; return how many.

    Only files older than ``min_age_s``: a younger one may belong to another process writing into the
    same folder right now (a parallel ``--shard``), and a temp file lives only while one image is encoded.
    """
    count = 0
    if not Path(root).is_dir():
        return 0
    cutoff = time.time() - min_age_s
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.endswith(TEMP_MARKER):
                try:
                    path = os.path.join(dirpath, name)
                    if os.stat(path).st_mtime > cutoff:
                        continue
                    os.unlink(path)
                    count += 1
                except OSError:
                    pass
    return count


def _err(path: Path, reason: str) -> ImageError:
    return ImageError(f"{path}: {reason}")
