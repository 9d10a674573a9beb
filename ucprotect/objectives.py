"""Training objectives, by name. Each computes a scalar loss for one batch; the name goes into the weights.

* ``shortcut`` (default): make every concept key's perturbation an easy, robust shortcut. Pairs of
  *different* photos carrying the same key, each seen through a thief's transforms, must be matched by
  a small CNN that learns jointly (InfoNCE over keys). Generator and CNN both minimise it, as in
  error-minimising noise, but over concept keys rather than one dataset's labels, so it transfers.
* ``paper``: 14A's concept-wise discriminant loss, per sample: pull the perturbed photo's embedding
  toward its concept's farthest concept and push it from the k nearest (additive form).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .budget import apply_budget
from .errors import ConfigError
from .transforms import thief_views

_REGISTRY: dict[str, Callable[..., "Objective"]] = {}


def register_objective(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return wrap


def list_objectives() -> list[str]:
    return sorted(_REGISTRY)


def create_objective(name: str, **kwargs) -> "Objective":
    if name not in _REGISTRY:
        raise ConfigError(f"unknown objective {name!r}; valid objectives: {', '.join(list_objectives())}")
    return _REGISTRY[name](**kwargs)


@dataclass
class Batch:
    images: torch.Tensor  # B x 3 x S x S in [0, 1] (training resolution)
    embeddings: torch.Tensor  # B x D concept embeddings computed at the backbone's resolution
    generator: torch.Generator  # randomness for this step (seeded per step, so resumes repeat exactly)


class Objective(nn.Module):
    """Base: subclasses implement ``loss(generator, batch, epsilon)``; extra learnable parts are submodules."""

    name = ""
    needs_embeddings = False  # whether batches must carry concept embeddings (costly to compute on CPU)

    def loss(self, generator, batch: Batch, epsilon: float) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class _KeyEncoder(nn.Module):
    """The stand-in thief: a small CNN embedding of a (transformed) protected image."""

    def __init__(self, dim: int = 128):
        super().__init__()
        layers, c = [], 3
        for out in (32, 64, 128):
            layers += [nn.Conv2d(c, out, 3, 2, 1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, dim))

    def forward(self, x):
        # high-pass first: the image content is the noise here, the perturbation the signal
        x = x - F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, 1)
        return F.normalize(self.body(x * 10), dim=-1)


@register_objective("shortcut")
class ShortcutObjective(Objective):
    def __init__(self, view_size: int = 64, temperature: float = 0.1, keys_per_batch: int | None = None, **_):
        super().__init__()
        self.view_size = view_size
        self.temperature = temperature
        self.keys_per_batch = keys_per_batch
        self.encoder = _KeyEncoder()

    def loss(self, generator, batch: Batch, epsilon: float):
        x, g = batch.images, batch.generator
        b = x.shape[0] // 2
        if b < 2:
            raise ConfigError("the shortcut objective needs a batch size of at least 4")
        keys = torch.randperm(generator.config.num_keys, generator=g)[:b].to(x.device)
        cond = generator.key_embeddings[keys]
        own = {"keys": keys} if generator.draws_keys else {}  # twin concepts share an embedding, not a texture
        first, second = x[:b], x[b : 2 * b]  # two different photos carry each key
        views = []
        for imgs in (first, second):
            delta = generator(imgs, cond, **own) * epsilon
            views.append(thief_views(apply_budget(imgs, delta, epsilon), self.view_size, g))
        za, zb = self.encoder(views[0]), self.encoder(views[1])
        logits = za @ zb.T / self.temperature
        target = torch.arange(b, device=x.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        acc = (logits.argmax(1) == target).float().mean()
        return loss, {"match_acc": float(acc)}


@register_objective("paper")
class PaperObjective(Objective):
    needs_embeddings = True

    def __init__(self, backbone=None, concept_embeddings: torch.Tensor | None = None, nearest_k: int = 5, **_):
        super().__init__()
        if backbone is None or concept_embeddings is None:
            raise ConfigError("the paper objective needs the backbone and the concept embeddings")
        self.backbone = [backbone]  # not a submodule: frozen, not saved with the objective
        sim = concept_embeddings @ concept_embeddings.T
        self.register_buffer("concepts", concept_embeddings)
        self.register_buffer("farthest", sim.argmin(1))
        sim.fill_diagonal_(-float("inf"))
        self.register_buffer("nearest", sim.topk(nearest_k, dim=1).indices)

    def loss(self, generator, batch: Batch, epsilon: float):
        x, e = batch.images, batch.embeddings
        concept = (e @ self.concepts.T).argmax(1)
        delta = generator(x, e) * epsilon
        z = self.backbone[0].encode_image(apply_budget(x, delta, epsilon))
        far = (z * self.concepts[self.farthest[concept]]).sum(-1)
        near = torch.einsum("bd,bkd->bk", z, self.concepts[self.nearest[concept]]).mean(1)
        hits = ((z @ self.concepts.T).argmax(1) == self.farthest[concept]).float().mean()
        return (near - far).mean(), {"far_hit": float(hits)}
