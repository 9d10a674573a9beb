"""Image-quality metrics reported per image: PSNR, L-inf and SSIM on 8-bit arrays.

They run on every photo `protect` writes, so they are built to cost little next to decoding and
encoding it: PSNR and L-inf come from one histogram of absolute differences (Pillow's C code), SSIM
from separable Gaussian filters on a box-reduced copy.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops


def abs_difference_histogram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of |a - b| = 0, 1, ..., 255 over all values of two uint8 arrays of equal shape."""
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"need two uint8 arrays of one shape, got {a.dtype}{a.shape} and {b.dtype}{b.shape}")
    if a.size == 0:
        return np.zeros(256, dtype=np.int64)
    a, b = (np.ascontiguousarray(v).reshape(a.shape[0], -1) for v in (a, b))
    size = (a.shape[1], a.shape[0])
    diff = ImageChops.difference(*(Image.frombuffer("L", size, v, "raw", "L", 0, 1) for v in (a, b)))
    return np.asarray(diff.histogram(), dtype=np.int64)


def psnr_from_histogram(hist: np.ndarray) -> float:
    """PSNR in dB (peak 255) from ``abs_difference_histogram``; inf when nothing differs."""
    sq = float((hist * np.arange(256, dtype=np.float64) ** 2).sum())
    n = int(hist.sum())
    return float("inf") if sq == 0 or n == 0 else 10.0 * np.log10(255.0**2 * n / sq)


def linf_from_histogram(hist: np.ndarray) -> int:
    """Largest absolute difference, from ``abs_difference_histogram``."""
    nonzero = np.flatnonzero(hist)
    return int(nonzero[-1]) if nonzero.size else 0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays of equal shape (inf when identical)."""
    return psnr_from_histogram(abs_difference_histogram(a, b))


def ssim(a: np.ndarray, b: np.ndarray, max_side: int = 512) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5) on 8-bit luminance; large images are measured downscaled.

    Downscaling keeps the metric cheap on 12-megapixel photos; it slightly overstates SSIM of
    high-frequency perturbations, so PSNR and L-inf are reported beside it. NumPy, not torch: it runs
    on the writer threads, beside the model's thread pool.
    """
    x, y = (_luma(v, max_side) for v in (a, b))
    h, w = x.shape
    if min(h, w) <= 10:
        return 1.0 if np.array_equal(x, y) else float(1 - np.mean(np.abs(x - y)) / 255)
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).astype(np.float32)
    moments = np.stack([x, y, x * x, y * y, x * y])  # all five local moments at once
    rows = g[0] * moments[:, : h - 10]  # separable Gaussian window, valid part only
    for k in range(1, 11):
        rows += g[k] * moments[:, k : k + h - 10]
    local = g[0] * rows[:, :, : w - 10]
    for k in range(1, 11):
        local += g[k] * rows[:, :, k : k + w - 10]
    mu_x, mu_y, xx, yy, xy = local
    sxx, syy, sxy = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def _luma(a: np.ndarray, max_side: int) -> np.ndarray:
    """8-bit luminance (ITU-R 601, as Pillow's "L") as float32, box-reduced so its long side <= max_side."""
    img = Image.fromarray(np.ascontiguousarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a))
    factor = int(np.ceil(max(img.size) / max_side))
    if factor > 1:  # box-filter reduction in Pillow's C code: cheap on 12-megapixel photos
        img = img.reduce(factor)
    return np.asarray(img.convert("L"), dtype=np.float32)
