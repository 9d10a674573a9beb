"""Which concept key each photo is protected with.

Protection works when the photos a thief would put in one class carry the same pattern and other
classes carry other patterns (../shared/PAPER.md, measurement 4). Without anyone's labels we get there
by grouping: photos of one folder share the folder's key (``folder``); a flat collection is clustered by
concept (``cluster``); a lone photo is keyed by its coarse concept group (``none``). Groups get distinct
keys, chosen nearest to the group's mean concept embedding.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from .clustering import kmeans
from .errors import ConfigError

GROUP_MODES = ("auto", "folder", "cluster", "none")


def resolve_mode(mode: str, rel_paths: list[Path]) -> str:
    """``auto``: folders when the photos sit in two or more folders, else clusters (8+ photos), else none."""
    if mode not in GROUP_MODES:
        raise ConfigError(f"unknown --group-by {mode!r}; valid: {', '.join(GROUP_MODES)}")
    if mode != "auto":
        return mode
    if len({p.parent for p in rel_paths}) >= 2:
        return "folder"
    return "cluster" if len(rel_paths) >= 8 else "none"


def folder_sample(rel_paths: list[Path], per_folder: int) -> list[int]:
    """Indices of at most ``per_folder`` photos of each folder, evenly spaced in path order.

    A folder's key depends only on its mean concept embedding, which a few dozen photos estimate
    well; embedding every photo of a 10,000-photo folder would cost more than protecting it.
    """
    by_folder: dict[str, list[int]] = {}
    for i, r in sorted(enumerate(rel_paths), key=lambda t: t[1].as_posix()):
        by_folder.setdefault(r.parent.as_posix(), []).append(i)
    chosen = []
    for idx in by_folder.values():
        if len(idx) <= per_folder:
            chosen += idx
        else:
            chosen += [idx[round(j * (len(idx) - 1) / (per_folder - 1))] for j in range(per_folder)] if per_folder > 1 else idx[:1]
    return sorted(chosen)


def default_clusters(n: int) -> int:
    return max(2, min(256, round(math.sqrt(n))))


def least_alike(candidates: torch.Tensor, chosen: torch.Tensor | list[int], texture_similarity: torch.Tensor) -> int:
    """The candidate key whose texture is least like any already chosen one (the first among equals,
    so candidates ordered nearest-first keep the nearest)."""
    clash = texture_similarity[candidates][:, chosen].amax(1)
    return int(candidates[int(clash.argmin())])


def assign_distinct(group_embeddings: torch.Tensor, key_embeddings: torch.Tensor,
                    texture_similarity: torch.Tensor | None = None, candidates: int = 16) -> torch.Tensor:
    """Give each group its own key near the group's embedding, with textures as unlike as possible.

    Greedy and deterministic: groups are served in order of how clearly they match a key; each takes, among
    its ``candidates`` nearest free keys, the one whose texture is least like any texture already given out
    (``texture_similarity``, K x K; without it, simply the nearest free key). Two groups with look-alike
    textures would teach a model nothing that separates them. Once every key is taken, keys repeat.
    """
    sim = F.normalize(group_embeddings.float(), dim=-1) @ key_embeddings.T
    keys = torch.full((sim.shape[0],), -1, dtype=torch.long)
    taken = torch.zeros(sim.shape[1], dtype=torch.bool)
    for g in sim.max(1).values.argsort(descending=True).tolist():
        row = sim[g].masked_fill(taken, -float("inf")) if not taken.all() else sim[g]
        if texture_similarity is None or not taken.any() or taken.all():
            keys[g] = int(row.argmax())
        else:
            cand = row.topk(min(candidates, int((~taken).sum()))).indices
            keys[g] = least_alike(cand, taken.nonzero().squeeze(1), texture_similarity)
        taken[keys[g]] = True
    return keys


def assign_keys(embeddings: torch.Tensor, rel_paths: list[Path], mode: str, key_embeddings: torch.Tensor,
                coarse_keys: torch.Tensor, clusters: int | None = None, seed: int = 0,
                texture_similarity: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str]]:
    """Return (key index per photo, group name per photo) for photos with the given concept embeddings."""
    mode = resolve_mode(mode, rel_paths)
    if mode == "none":
        nearest = (F.normalize(embeddings.float(), dim=-1) @ key_embeddings.T).argmax(1)
        keys = coarse_keys[nearest]
        return keys, [f"concept:{int(k)}" for k in keys]
    if mode == "folder":
        names = [p.parent.as_posix() for p in rel_paths]
        groups = sorted(set(names))
        index = torch.tensor([groups.index(n) for n in names])
    else:
        k = clusters or default_clusters(len(rel_paths))
        index, _ = kmeans(embeddings, k, seed=seed)
        groups = [f"cluster:{i}" for i in range(int(index.max()) + 1)]
        names = [groups[i] for i in index.tolist()]
    means = torch.stack([embeddings[index == g].mean(0) if (index == g).any() else embeddings[0] for g in range(len(groups))])
    group_keys = assign_distinct(means, key_embeddings, texture_similarity)
    return group_keys[index], names
