"""The perturbation budget, applied in exactly one place for both `protect` and `train`."""
from __future__ import annotations

import torch


def apply_budget(images: torch.Tensor, delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return ``images + delta`` with ``|delta| <= epsilon`` (L-inf) and the result clamped to [0, 1].

    ``images`` are in [0, 1]; ``epsilon`` is in the same units (8/255 for the default budget). The clamp
    to [0, 1] only ever shrinks the perturbation, so the L-inf bound holds on the output.
    Differentiable (straight clamps), so training sees exactly what `protect` writes.
    """
    delta = delta.clamp(-epsilon, epsilon)
    return (images + delta).clamp(0.0, 1.0)


def epsilon_from_255(value: float) -> float:
    """Convert a budget given in 0-255 pixel units (the CLI's unit) to [0, 1] units."""
    return float(value) / 255.0
