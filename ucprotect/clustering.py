"""Seeded spherical k-means, used for concept groups, collection grouping and label-agnostic labels, and the
silhouette that picks a collection's cluster count without labels."""
from __future__ import annotations

import math

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


def silhouette(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette with cosine distance: how much nearer each point is to its own cluster than to the
    next nearest (-1 to 1). A point alone in its cluster counts 0, as is usual."""
    x = F.normalize(x.float(), dim=-1)
    k = int(labels.max()) + 1
    onehot = F.one_hot(labels, k).float()
    count = onehot.sum(0)
    total = x @ (x.T @ onehot)  # N x k: summed similarity to each cluster's members
    n_own = count[labels]
    own = (total.gather(1, labels[:, None]).squeeze(1) - (x * x).sum(1)) / (n_own - 1).clamp(min=1)  # others only
    other = (total / count.clamp(min=1)).masked_fill(onehot.bool() | (count == 0)[None], -2).amax(1)
    s = (own - other) / torch.maximum(1 - other, 1 - own).clamp(min=1e-8)
    return float(torch.where(n_own > 1, s, torch.zeros_like(s)).mean())


def candidate_counts(n: int) -> list[int]:
    """Cluster counts worth trying for ``n`` points: 2 to 2 sqrt(n) (at most 256), about 12 % apart, below n."""
    top = max(2, min(256, round(2 * math.sqrt(n))))
    return [k for k in sorted({max(2, round(2 * 1.12 ** i)) for i in range(64)}) if k <= top and k < n]


def silhouette_count(x: torch.Tensor, seed: int = 0, sample: int = 2000) -> int:
    """The cluster count whose k-means clustering has the best silhouette (on at most ``sample`` points).

    Why not sqrt(n): a thief's classes decide what protects, and each should carry one pattern; sqrt(n) splits
    a 1,200-photo, ten-class collection into 35 clusters, the silhouette finds about the classes
    (benchmarks/cluster_count.py; benchmarks/results/RESULTS.md, sessions 38-39). Scoring a sample keeps it a few
    seconds for any collection, and caps the count at 2 sqrt(sample), about 89 for the default."""
    if len(x) > sample:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:sample]]
    scores = {k: silhouette(x, kmeans(x, k, seed=seed)[0]) for k in candidate_counts(len(x))}
    return max(scores, key=scores.get) if scores else max(1, len(x))
