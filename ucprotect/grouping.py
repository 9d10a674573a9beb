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
from .keyfile import KeyRecord

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
                    texture_similarity: torch.Tensor | None = None, candidates: int = 16,
                    reserved: list[int] | None = None) -> torch.Tensor:
    """Give each group its own key near the group's embedding, with textures as unlike as possible.

    Greedy and deterministic: groups are served in order of how clearly they match a key; each takes, among
    its ``candidates`` nearest free keys, the one whose texture is least like any texture already given out
    (``texture_similarity``, K x K; without it, simply the nearest free key). Two groups with look-alike
    textures would teach a model nothing that separates them. ``reserved`` keys count as given out already
    (groups of the same collection keyed by an earlier run). Once every key is taken, keys repeat.
    """
    sim = F.normalize(group_embeddings.float(), dim=-1) @ key_embeddings.T
    keys = torch.full((sim.shape[0],), -1, dtype=torch.long)
    taken = torch.zeros(sim.shape[1], dtype=torch.bool)
    if reserved:
        taken[torch.tensor(sorted(set(reserved)), dtype=torch.long)] = True
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
                texture_similarity: torch.Tensor | None = None, record: KeyRecord | None = None) -> tuple[torch.Tensor, list[str]]:
    """Return (key index per photo, group name per photo) for photos with the given concept embeddings.

    With a ``record`` (the keys file of earlier runs), recorded folders and clusters keep their keys and
    only new folders are given keys, distinct from the recorded ones; the record is updated in place.
    """
    mode = resolve_mode(mode, rel_paths)
    if mode == "none":
        nearest = (F.normalize(embeddings.float(), dim=-1) @ key_embeddings.T).argmax(1)
        keys = coarse_keys[nearest]
        return keys, [f"concept:{int(k)}" for k in keys]
    if mode == "folder":
        names = [p.parent.as_posix() for p in rel_paths]
        known = dict(record.folders) if record is not None else {}
        new = sorted(set(names) - set(known))
        if new:
            means = torch.stack([embeddings[[i for i, n in enumerate(names) if n == g]].mean(0) for g in new])
            known.update(zip(new, assign_distinct(means, key_embeddings, texture_similarity,
                                                  reserved=list(known.values())).tolist()))
            if record is not None:
                record.folders.update({g: known[g] for g in new})
        return torch.tensor([known[n] for n in names], dtype=torch.long), names
    if record is not None and record.centroids:
        index = record.nearest_cluster(embeddings)
        return torch.tensor(record.cluster_keys, dtype=torch.long)[index], [f"cluster:{i}" for i in index.tolist()]
    k = clusters or default_clusters(len(rel_paths))
    index, _ = kmeans(embeddings, k, seed=seed)
    groups = [f"cluster:{i}" for i in range(int(index.max()) + 1)]
    means = torch.stack([embeddings[index == g].mean(0) if (index == g).any() else embeddings[0] for g in range(len(groups))])
    group_keys = assign_distinct(means, key_embeddings, texture_similarity)
    if record is not None:
        record.centroids = F.normalize(means.float(), dim=-1).tolist()
        record.cluster_keys = group_keys.tolist()
    return group_keys[index], [groups[i] for i in index.tolist()]
