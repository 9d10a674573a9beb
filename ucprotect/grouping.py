"""Which concept key each photo is protected with.

Protection works when the photos a thief would put in one class carry the same pattern and other
classes carry other patterns (../shared/PAPER.md, measurement 4). Without anyone's labels we get there
by grouping: photos of one folder share the folder's key (``folder``); a flat collection is clustered by
concept (``cluster``); a lone photo is keyed by its coarse concept group (``none``). Groups get distinct
keys, chosen nearest to the group's mean concept embedding.

Two-level codes. A thief may label more coarsely than our groups (all dog folders as "dog"); if each folder
then carries an unrelated texture, the thief's class holds several and protection collapses
(benchmarks/families.py: 0.69 -> 0.15 with five groups per class). So groups can also be clustered by their
mean embeddings into super-groups, and each photo's texture is then the sum of its super-group's wave
(shared) and its group's own wave: groups a thief merges by concept tend to share half their pattern, while
every group still has a pattern of its own. Off unless asked for (``super_groups``): measured on held-out
sets it cost folder labels about 0.1 of score and gained nothing measurable for clusters
(benchmarks/results/RESULTS.md, session 5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .clustering import kmeans, silhouette_count
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


@dataclass
class Assignment:
    """Per photo: its key, its super-group's shared key (-1: a one-level texture) and its group's name."""

    keys: torch.Tensor
    shared: torch.Tensor
    groups: list[str]


def least_alike(candidates: torch.Tensor, chosen: torch.Tensor | list[int], texture_similarity: torch.Tensor) -> int:
    """The candidate key whose texture is least like any already chosen one (the first among equals,
    so candidates ordered nearest-first keep the nearest)."""
    clash = texture_similarity[candidates][:, chosen].amax(1)
    return int(candidates[int(clash.argmin())])


# How many of the concepts nearest a group's mean embedding its key is chosen from (None or 0: all keys).
KEY_CANDIDATES = 16


def assign_distinct(group_embeddings: torch.Tensor, key_embeddings: torch.Tensor,
                    texture_similarity: torch.Tensor | None = None, candidates: int | None = KEY_CANDIDATES,
                    reserved: list[int] | None = None) -> torch.Tensor:
    """Give each group its own key near the group's embedding, with textures as unlike as possible.

    Greedy and deterministic: groups are served in order of how clearly they match a key; each takes, among
    its ``candidates`` nearest free keys (None: all of them), the one whose texture is least like any texture
    already given out (``texture_similarity``, K x K; without it, simply the nearest free key). Two groups with
    look-alike textures would teach a model nothing that separates them. All keys as candidates give the most
    spread set (concept nearness then only breaks ties), but held out that gained nothing overall
    (benchmarks/results/RESULTS.md, session 6: imagenette +0.07 over 3 seeds, cifar10 and caltech101 -0.12 on
    one seed each), so the default stays near the group's concept. ``reserved`` keys count as given out
    already (groups of the same collection keyed by an earlier run). Once every key is taken, keys repeat.
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
            cand = row.topk(min(candidates or len(row), int((~taken).sum()))).indices
            keys[g] = least_alike(cand, taken.nonzero().squeeze(1), texture_similarity)
        taken[keys[g]] = True
    return keys


def _super_keys(means: torch.Tensor, key_embeddings: torch.Tensor, texture_similarity: torch.Tensor | None,
                super_groups: int, reserved: list[int], seed: int,
                candidates: int | None = KEY_CANDIDATES) -> tuple[torch.Tensor, list, list]:
    """(shared key per group, -1 for none; unit centroid per super-group; key per super-group) for groups
    with these mean embeddings; no super-groups when there are too few groups to share anything."""
    n = min(super_groups, len(means) - 1)
    if n < 2:
        return torch.full((len(means),), -1, dtype=torch.long), [], []
    index, centroids = kmeans(means, n, seed=seed)
    keys = assign_distinct(centroids, key_embeddings, texture_similarity, candidates, reserved=reserved)
    return keys[index], centroids.tolist(), keys.tolist()


def assign_keys(embeddings: torch.Tensor, rel_paths: list[Path], mode: str, key_embeddings: torch.Tensor,
                coarse_keys: torch.Tensor, clusters: int | None = None, seed: int = 0,
                texture_similarity: torch.Tensor | None = None, record: KeyRecord | None = None,
                super_groups: int = 0, key_candidates: int | None = KEY_CANDIDATES) -> Assignment:
    """Key, shared key and group name for photos with the given concept embeddings.

    ``key_candidates``: each new group's key is the least alike of the textures of that many concepts nearest the
    group's mean (:func:`assign_distinct`; None or 0: of all keys, the most spread set).

    ``super_groups``: how many super-groups share a wave (0: one-level textures). With a ``record`` (the
    keys file of earlier runs), recorded folders and clusters keep their keys and only new folders are given
    keys, distinct from the recorded ones, and join the nearest recorded super-group; the record is updated
    in place.
    """
    mode = resolve_mode(mode, rel_paths)
    if mode == "none":
        nearest = (F.normalize(embeddings.float(), dim=-1) @ key_embeddings.T).argmax(1)
        keys = coarse_keys[nearest]
        return Assignment(keys, torch.full_like(keys, -1), [f"concept:{int(k)}" for k in keys])
    if mode == "folder":
        names = [p.parent.as_posix() for p in rel_paths]
        record = record if record is not None else KeyRecord("")
        new = sorted(set(names) - set(record.folders))
        if new:
            means = F.normalize(torch.stack([embeddings[[i for i, n in enumerate(names) if n == g]].mean(0) for g in new]), dim=-1)
            taken = list(record.folders.values()) + list(record.shared.values())
            if record.super_centroids:  # a later run: new folders join the nearest recorded super-group
                index = record.nearest_super_group(means)
                shared = torch.tensor(record.super_keys, dtype=torch.long)[index]
            else:
                shared, record.super_centroids, record.super_keys = _super_keys(
                    means, key_embeddings, texture_similarity, super_groups, taken, seed, key_candidates)
            taken += [int(k) for k in shared if k >= 0]
            own = assign_distinct(means, key_embeddings, texture_similarity, key_candidates, reserved=taken)
            record.folders.update(zip(new, own.tolist()))
            record.shared.update({g: int(k) for g, k in zip(new, shared.tolist()) if k >= 0})
        keys = torch.tensor([record.folders[n] for n in names], dtype=torch.long)
        return Assignment(keys, torch.tensor([record.shared.get(n, -1) for n in names], dtype=torch.long), names)
    if record is not None and record.centroids:
        index = record.nearest_cluster(embeddings)
        shared = record.cluster_shared or [-1] * len(record.cluster_keys)
        return Assignment(torch.tensor(record.cluster_keys, dtype=torch.long)[index], torch.tensor(shared, dtype=torch.long)[index],
                          [f"cluster:{i}" for i in index.tolist()])
    k = clusters or silhouette_count(embeddings, seed)
    index, _ = kmeans(embeddings, k, seed=seed)
    groups = [f"cluster:{i}" for i in range(int(index.max()) + 1)]
    means = F.normalize(torch.stack([embeddings[index == g].mean(0) if (index == g).any() else embeddings[0]
                                     for g in range(len(groups))]), dim=-1)
    shared, _, _ = _super_keys(means, key_embeddings, texture_similarity, super_groups, [], seed, key_candidates)
    group_keys = assign_distinct(means, key_embeddings, texture_similarity, key_candidates,
                                 reserved=[int(k) for k in shared if k >= 0])
    if record is not None:
        record.centroids = means.tolist()
        record.cluster_keys = group_keys.tolist()
        record.cluster_shared = shared.tolist()
    return Assignment(group_keys[index], shared[index], [groups[i] for i in index.tolist()])
