"""The perturbation budget, applied in exactly one place for both `protect` and `train`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .generator import PeriodicTexture


def apply_budget(images: torch.Tensor, delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return ``images + delta`` with ``|delta| <= epsilon`` (L-inf) and the result clamped to [0, 1].

    ``images`` are in [0, 1]; ``epsilon`` is in the same units (8/255 for the default budget). The clamp
    to [0, 1] only ever shrinks the perturbation, so the L-inf bound holds on the output.
    Differentiable (straight clamps), so training sees exactly what `protect` writes.
    """
    delta = delta.clamp(-epsilon, epsilon)
    return (images + delta).clamp(0.0, 1.0)


def check_epsilon_255(value: float) -> None:
    """Refuse a budget outside (0, 64] pixel units: one check for protect, verify and train."""
    if not 0 < value <= 64:
        raise ConfigError(f"--epsilon {value}: must be in (0, 64] (pixel units of 0-255; default 8)")


def epsilon_from_255(value: float) -> float:
    """Convert a budget given in 0-255 pixel units (the CLI's unit) to [0, 1] units."""
    return float(value) / 255.0


def _pixel_steps(delta: torch.Tensor, epsilon: float, max_value: int) -> torch.Tensor:
    """``delta`` ([0, 1] units) in whole pixel steps, capped at ``floor(epsilon * max_value)``."""
    step = int(np.floor(epsilon * max_value + 1e-6))
    return delta.mul(max_value).round_().clamp_(-step, step)


def apply_budget_pixels(pixels: np.ndarray, delta: torch.Tensor, epsilon: float, max_value: int = 255) -> np.ndarray:
    """``apply_budget`` on integer pixels (H x W x C, any channel count >= delta's): what `protect` writes.

    ``delta`` (C x H x W, [0, 1] units) is rounded to whole pixel steps and capped at ``floor(epsilon *
    max_value)`` steps before it is added, so ``|output - input| <= epsilon`` holds exactly after
    quantisation; channels beyond delta's (alpha) are copied untouched.
    """
    channels = delta.shape[0]
    d = _pixel_steps(delta, epsilon, max_value).permute(1, 2, 0)
    wide = torch.int32 if max_value > 255 else torch.int16
    out = pixels.copy()
    view = torch.from_numpy(out)[..., :channels]
    view.copy_((view.to(wide) + d.to(wide)).clamp_(0, max_value))
    return out


def apply_budget_lookup(pixels: np.ndarray, texture: "PeriodicTexture", epsilon: float, max_value: int = 255,
                        rows: int = 32, out: np.ndarray | None = None) -> np.ndarray:
    """``apply_budget_pixels`` for a perturbation given as a :class:`~ucprotect.generator.PeriodicTexture`.

    The same rounding and cap, applied once to its small table; then, a band of ``rows`` rows at a time
    (so the band stays in cache), one add and one clip per value in integers, the values added being a
    slice of a few precomputed rows (``PeriodicTexture.shifted_rows``) or, where that does not apply, a
    lookup per pixel. This is what keeps `protect` near the cost of decoding and encoding a photo.
    ``out`` (pixels' shape and dtype) receives the result, e.g. a band of rows of a larger photo.
    """
    channels = texture.table.shape[1]
    wide = np.int32 if max_value > 255 else np.int16
    steps = _pixel_steps(texture.table.float(), epsilon, max_value).numpy().astype(wide)
    # every band overwrites its channels; only channels beyond the table's (alpha, K) need copying first
    if out is None:
        out = np.empty_like(pixels) if channels == pixels.shape[2] else pixels.copy()
    elif channels != pixels.shape[2]:
        out[...] = pixels
    shifted = texture.shifted_rows()
    if shifted is not None:  # each image row adds a slice of a few precomputed rows of steps
        row_steps = steps.take(shifted.rows, axis=0)  # levels x length x C
        width = pixels.shape[1]
    for start in range(0, pixels.shape[0], rows):
        band = pixels[start:start + rows, :, :channels].astype(wide)
        if shifted is None:
            band += steps.take(texture.index(start, start + rows), axis=0)
        else:
            for r, (level, first) in enumerate(zip(shifted.level[start:start + rows], shifted.start[start:start + rows])):
                band[r] += row_steps[level, first:first + width]
        np.clip(band, 0, max_value, out=band)
        out[start:start + rows, :, :channels] = band
    return out
