"""Victim models a data thief would train from scratch, built from small configs (no downloads)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .errors import ConfigError

_REGISTRY: dict[str, Callable[[int, int], nn.Module]] = {}


def register_victim(name: str):
    def wrap(fn):
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_victims() -> list[str]:
    return sorted(_REGISTRY)


def create_victim(name: str, num_classes: int, image_size: int) -> nn.Module:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown victim {name!r}; valid victims: {', '.join(list_victims())}")
    return _REGISTRY[name](num_classes, image_size)


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


def resnet(num_classes: int, image_size: int, layers=(2, 2, 2, 2), width: int = 64) -> nn.Module:
    """ResNet-18 layout; the ImageNet stem (7x7/2 + max-pool) above 96 px, a 3x3 stem below (CIFAR style)."""
    stem = ([nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
            if image_size > 96 else [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)])
    blocks, c = [], width
    for i, n in enumerate(layers):
        out = width * 2**i
        for j in range(n):
            blocks.append(_Basic(c, out, 2 if (j == 0 and i > 0) else 1))
            c = out
    return nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


@register_victim("resnet18")
def _resnet18(num_classes, image_size):
    return resnet(num_classes, image_size)


@register_victim("resnet18-w16")
def _resnet18_w16(num_classes, image_size):
    """ResNet-18's depth, residuals and BatchNorm at a quarter of its width (1/16 of the FLOPs): a stand-in for
    ResNet-18 on CPUs where a full one takes over an hour a run (how far it agrees: benchmarks/results, session 26)."""
    return resnet(num_classes, image_size, width=16)


@register_victim("small-cnn")
def _small_cnn(num_classes, image_size):
    """A fast 4-stage CNN for CPU checks (the 'small CNN' of ../shared/PAPER.md measurement 4)."""
    layers, c = [], 3
    for out in (32, 64, 128, 256):
        layers += [nn.Conv2d(c, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))


class _InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_skip = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.body(x) if self.use_skip else self.body(x)


@register_victim("mobilenetv2")
def _mobilenetv2(num_classes, image_size):
    """MobileNetV2 (width 1.0); the first stride is 1 below 96 px so small images keep spatial detail."""
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    first = 2 if image_size > 96 else 1
    layers, c = [nn.Conv2d(3, 32, 3, first, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True)], 32
    for t, out, n, s in cfg:
        for i in range(n):
            layers.append(_InvertedResidual(c, out, s if i == 0 else 1, t))
            c = out
    layers += [nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(inplace=True),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


class _ViT(nn.Module):
    def __init__(self, num_classes, image_size, patch=8, dim=192, depth=6, heads=3):
        super().__init__()
        patch = max(4, min(patch, image_size // 8))
        self.embed = nn.Conv2d(3, dim, patch, patch)
        n = (image_size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 4, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos[:, : x.shape[1] + 1]
        return self.head(self.norm(self.encoder(x))[:, 0])


@register_victim("vit-tiny")
def _vit_tiny(num_classes, image_size):
    return _ViT(num_classes, image_size)
