"""Seeded spherical k-means, used for concept groups, collection grouping and label-agnostic labels."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kmeans(x: torch.Tensor, k: int, seed: int = 0, iters: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster unit vectors ``x`` (N x D) by cosine into ``k`` groups.

    Returns (labels N, centroids k x D). Deterministic for a given seed (k-means++ initialisation);
    with ``k >= N`` every point is its own cluster.
    """
    x = F.normalize(x.float(), dim=-1)
    n = x.shape[0]
    if k >= n:
        return torch.arange(n), x.clone()
    g = torch.Generator().manual_seed(seed)
    centroids = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    dist = torch.full((n,), float("inf"))
    for _ in range(1, k):
        dist = torch.minimum(dist, 1 - x @ centroids[-1])
        probs = dist.clamp(min=0) ** 2
        idx = torch.multinomial(probs / probs.sum(), 1, generator=g) if probs.sum() > 0 else torch.randint(n, (1,), generator=g)
        centroids.append(x[idx].squeeze(0))
    c = torch.stack(centroids)
    labels = torch.full((n,), -1)
    for _ in range(iters):
        new = (x @ c.T).argmax(1)
        if torch.equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = F.normalize(members.mean(0), dim=0)
    return labels, c
