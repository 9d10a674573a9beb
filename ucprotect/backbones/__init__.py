"""Image-text backbones: image -> unit embedding and text -> unit embedding in one shared space.

Backbones are registered by name (``conse``, ``clip``); a spec string selects one, with an optional
argument after a colon (``clip:openai/clip-vit-base-patch32`` or ``clip:/path/to/saved/clip``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BackboneError

_REGISTRY: dict[str, Callable[..., "Backbone"]] = {}


def register_backbone(name: str):
    """Decorator adding a backbone factory ``fn(arg: str | None, **kwargs) -> Backbone`` to the registry."""

    def wrap(fn):
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, _, arg = spec.partition(":")
    return name, (arg or None)


def create_backbone(spec: str, **kwargs) -> "Backbone":
    """Build the backbone named by ``spec``; unknown names raise a :class:`BackboneError` listing valid ones."""
    name, arg = parse_spec(spec)
    if name not in _REGISTRY:
        raise BackboneError(f"unknown backbone {spec!r}; valid backbones: {', '.join(list_backbones())}")
    return _REGISTRY[name](arg, **kwargs)


class Backbone(nn.Module):
    """Base class. Subclasses set ``spec``, ``embed_dim``, ``image_size``, ``mean``, ``std`` and implement
    ``_image_features`` (normalised pixels -> features) and ``encode_text``."""

    spec: str = ""
    embed_dim: int = 0
    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Resize (short side to ``image_size``, centre crop) and normalise images in [0, 1]. Differentiable."""
        s = self.image_size
        h, w = images.shape[-2:]
        if (h, w) != (s, s):
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            images = F.interpolate(images, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
            top, left = (nh - s) // 2, (nw - s) // 2
            images = images[..., top : top + s, left : left + s]
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images - mean) / std

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings (B x embed_dim) of images in [0, 1], any size (B x 3 x H x W)."""
        return F.normalize(self._image_features(self.prepare(images)).float(), dim=-1)

    def _image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unit embeddings (N x embed_dim) of texts."""
        raise NotImplementedError


from . import clip, conse  # noqa: E402,F401  (register)
