"""Image-quality metrics reported per image: PSNR and SSIM on 8-bit RGB arrays."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 arrays of equal shape (inf when identical)."""
    diff = torch.from_numpy(np.array(a, dtype=np.int16)) - torch.from_numpy(np.array(b, dtype=np.int16))
    mse = float(diff.float().square_().mean(dtype=torch.float64))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, max_side: int = 1024) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5) on luminance; large images are measured downscaled.

    Downscaling keeps the metric cheap on 12-megapixel photos; it slightly overstates SSIM of
    high-frequency perturbations, so PSNR and L-inf are reported beside it.
    """
    factor = int(np.ceil(max(a.shape[:2]) / max_side))
    if factor > 1:  # box-filter reduction in Pillow's C code: cheap on 12-megapixel photos
        a, b = (np.asarray(Image.fromarray(np.ascontiguousarray(v)).reduce(factor)) for v in (a, b))
    x = _luma(a)
    y = _luma(b)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = (g / g.sum()).to(torch.float32)
    win = (g[:, None] * g[None, :])[None, None]
    pad = 5
    if min(x.shape[-2:]) <= 2 * pad:
        return 1.0 if np.array_equal(a, b) else float(1 - np.mean(np.abs(x.numpy() - y.numpy())) / 255)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def _luma(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(a, dtype=np.float32))
    if t.ndim == 3:
        t = t[..., 0] * 0.299 + t[..., 1] * 0.587 + t[..., 2] * 0.114
    return t[None, None]
