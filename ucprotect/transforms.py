"""What a data thief does to images before training, as differentiable batch transforms.

Training passes protected images through these so that the perturbation survives them; `verify`
uses the same operations (non-differentiably) as defences.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_resized_crop(x: torch.Tensor, size: int, g: torch.Generator, scale=(0.3, 1.0), flip: bool = True) -> torch.Tensor:
    """Per-sample random crop (area fraction in ``scale``, aspect 3/4..4/3), optional h-flip, resized to ``size``."""
    b = x.shape[0]
    area = torch.empty(b).uniform_(*scale, generator=g)
    logr = torch.empty(b).uniform_(math.log(3 / 4), math.log(4 / 3), generator=g)
    ratio = torch.exp(logr)
    sw = torch.sqrt(area * ratio).clamp(max=1.0)
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - sw)
    cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - sh)
    fl = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if flip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = sw * fl
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = sh
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta.to(x), (b, x.shape[1], size, size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def down_up(x: torch.Tensor, factor: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="bilinear",
                          align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    y = (x * x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return y.expand_as(x)


def thief_views(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """A random mix of the thief's transforms: crop+flip always, then down-up resize, blur, grayscale."""
    x = random_resized_crop(x, size, g)
    u = torch.rand(3, generator=g).tolist()
    if u[0] < 0.3:
        x = down_up(x, 0.5 + 0.5 * torch.rand(1, generator=g).item())
    if u[1] < 0.3:
        x = gaussian_blur(x, 0.3 + 0.7 * torch.rand(1, generator=g).item())
    if u[2] < 0.2:
        x = grayscale(x)
    return x
