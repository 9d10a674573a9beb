"""Image-quality metrics reported per image: PSNR, L-inf and SSIM on 8-bit arrays.

They run on every photo `protect` writes, so they are built to cost little next to decoding and
encoding it: PSNR and L-inf come from one pass of 16-bit differences in cache-sized bands, SSIM
from separable Gaussian filters on a box-reduced copy (``ssim_luma``, which takes the Pillow images
`protect` has anyway).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def difference_stats(a: np.ndarray, b: np.ndarray, rows: int = 32) -> tuple[int, int, int]:
    """(sum of squared differences, largest absolute difference, number of values) of two uint8 arrays.

    What PSNR and L-inf need, a band of rows at a time in 16-bit integers (a square of a difference of
    two bytes is below 2**16), about twice as fast as a histogram of differences on camera photos.
    """
    _check_pair(a, b)
    if a.size == 0:
        return 0, 0, 0
    a, b = (v.reshape(v.shape[0], -1) for v in (a, b))
    band = np.empty((min(rows, a.shape[0]), a.shape[1]), dtype=np.int16)
    squares, largest = 0, 0
    for start in range(0, a.shape[0], rows):
        d = band[: min(rows, a.shape[0] - start)]
        np.subtract(a[start:start + rows], b[start:start + rows], out=d, dtype=np.int16)
        np.multiply(d, d, out=d)  # may wrap past 32767: read as unsigned, it is exact
        u = d.view(np.uint16)
        squares += int(u.sum(dtype=np.int64))
        largest = max(largest, int(u.max()))
    return squares, int(round(largest**0.5)), int(a.size)


def psnr_from_stats(squares: int, count: int) -> float:
    """PSNR in dB (peak 255) from ``difference_stats``; inf when nothing differs."""
    return float("inf") if squares == 0 or count == 0 else float(10.0 * np.log10(255.0**2 * count / squares))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"need two uint8 arrays of one shape, got {a.dtype}{a.shape} and {b.dtype}{b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays of equal shape (inf when identical)."""
    squares, _, count = difference_stats(a, b)
    return psnr_from_stats(squares, count)


def ssim(a: np.ndarray, b: np.ndarray, max_side: int = 512) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5) on 8-bit luminance; large images are measured downscaled.

    Downscaling keeps the metric cheap on 12-megapixel photos; it slightly overstates SSIM of
    high-frequency perturbations, so PSNR and L-inf are reported beside it.
    """
    return ssim_of_luma(*(ssim_luma(_to_image(v), max_side) for v in (a, b)))


def ssim_luma(img: Image.Image, max_side: int = 512) -> np.ndarray:
    """The luminance ``ssim`` compares: 8-bit (ITU-R 601, as Pillow's "L") as float32, box-reduced so its
    long side <= max_side. From a Pillow image, so `protect` can reuse the images it decodes and encodes
    instead of converting 12-megapixel arrays back into images."""
    factor = int(np.ceil(max(img.size) / max_side))
    if factor > 1:  # box-filter reduction in Pillow's C code: cheap on 12-megapixel photos
        img = img.reduce(factor)
    return np.asarray(img.convert("L"), dtype=np.float32)


def ssim_of_luma(x: np.ndarray, y: np.ndarray, rows: int = 48) -> float:
    """Mean SSIM of two ``ssim_luma`` arrays, a band of ``rows`` output rows at a time (the five local
    moments of a band stay in cache: 1.6x faster than whole arrays). NumPy, not torch: it runs on the
    writer threads, beside the model's thread pool."""
    h, w = x.shape
    if min(h, w) <= 10:
        return 1.0 if np.array_equal(x, y) else float(1 - np.mean(np.abs(x - y)) / 255)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    total = 0.0
    for top in range(0, h - 10, rows):
        n = min(rows, h - 10 - top)
        xs, ys = x[top:top + n + 10], y[top:top + n + 10]
        moments = np.stack([xs, ys, xs * xs, ys * ys, xs * ys])  # all five local moments at once
        band = g[0] * moments[:, :n]  # separable Gaussian window, valid part only
        for k in range(1, 11):
            band += g[k] * moments[:, k:k + n]
        local = g[0] * band[:, :, : w - 10]
        for k in range(1, 11):
            local += g[k] * band[:, :, k : k + w - 10]
        mu_x, mu_y, xx, yy, xy = local
        sxx, syy, sxy = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
        s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
        total += float(s.sum(dtype=np.float64))
    return total / ((h - 10) * (w - 10))


def _to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a))
