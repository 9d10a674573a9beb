"""Concepts: a text vocabulary embedded by the backbone, with each concept's farthest and nearest ones.

The default vocabulary is the 1000 ImageNet classes with the prompt "a photo of a {name}", as in the
paper. Coarse concept groups (k-means over the text embeddings) are what single photos are keyed by:
coarser keys are more consistent across the photos of one subject.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .backbones.conse import PROMPT, imagenet_class_names
from .clustering import kmeans
from .grouping import least_alike


@dataclass
class ConceptSet:
    names: list[str]
    embeddings: torch.Tensor  # N x D, unit

    @classmethod
    def from_backbone(cls, backbone, names: list[str] | None = None, prompt: str = PROMPT) -> "ConceptSet":
        names = list(names) if names else imagenet_class_names()
        return cls(names, backbone.encode_text([prompt.format(n) for n in names]).float())

    def similarity(self) -> torch.Tensor:
        return self.embeddings @ self.embeddings.T

    def farthest(self) -> torch.Tensor:
        """Index of the least similar concept for each concept (the paper's target)."""
        return self.similarity().argmin(1)

    def nearest(self, k: int = 5) -> torch.Tensor:
        """Indices (N x k) of the k most similar other concepts (the paper pushes away from these)."""
        sim = self.similarity()
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=1).indices

    def coarse_groups(self, n_groups: int, seed: int = 0, texture_similarity: torch.Tensor | None = None,
                      candidates: int = 8) -> torch.Tensor:
        """Map each concept to the representative concept of its coarse group (N,), by k-means.

        The representative is the member nearest the group's centre; with ``texture_similarity`` (N x N),
        the one among the ``candidates`` nearest whose texture is least like the representatives already
        chosen, so that single photos of different coarse concepts get textures a model can tell apart.
        """
        labels, centroids = kmeans(self.embeddings, n_groups, seed=seed)
        rep = torch.empty(len(self.names), dtype=torch.long)
        chosen: list[int] = []
        for j in range(centroids.shape[0]):
            members = (labels == j).nonzero().squeeze(1)
            if not len(members):
                continue
            order = members[(self.embeddings[members] @ centroids[j]).argsort(descending=True)]
            pick = int(order[0])
            if texture_similarity is not None and chosen:
                pick = least_alike(order[:candidates], chosen, texture_similarity)
            chosen.append(pick)
            rep[members] = pick
        return rep
