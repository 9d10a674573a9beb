"""Single photos (`--group-by none`): how consistent can per-photo keys be? Cheap proxies, no victim runs.

    python benchmarks/single_photo_proxies.py

On ``train/imagenette`` (never eval/; 150 per class, 1,500 photos, embedded as `protect --group-by none`
does, with mirror TTA). Each photo's texture comes from its own concept embedding only, so protection
needs a thief's class to hold one texture (PAPER.md measurement 4: 100 % of a class -> 0.78, 80 % -> 0.29).
Two ways to raise that share are measured before any victim is trained:

- coarser concept groups: the photo's nearest of 1000 concepts mapped to G groups
  (``ConceptSet.coarse_groups``; the shipped weights use 64). Columns: the share of each class whose group
  is the class's commonest, how many of the 10 classes keep a commonest group of their own, and how well
  the group alone predicts the class (majority class per group): the shortcut a victim could learn;
- blending (``soft:T:M``): the texture a weighted sum of the M nearest coarse groups' textures, weights
  softmax(similarity / T). Column ``weight on class's group``: the mean weight a photo's texture gives its
  class's commonest group (1.0 would be a fully consistent class; ``hard`` is today's one-group texture).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ucprotect.concepts import ConceptSet  # noqa: E402
from ucprotect.engine import Protector  # noqa: E402
from variants import DATA, concept_embeddings, load  # noqa: E402


def commonest(groups: torch.Tensor, y: torch.Tensor) -> list[int]:
    return [int(groups[y == c].mode().values) for c in range(int(y.max()) + 1)]


def blend_weights(name: str, scores: torch.Tensor) -> torch.Tensor:
    """N x G weights of each photo's texture over the coarse groups (rows sum to 1)."""
    if name == "hard":
        return F.one_hot(scores.argmax(1), scores.shape[1]).float()
    _, t, m = name.split(":")
    top = scores.topk(int(m), dim=1)
    return torch.zeros_like(scores).scatter_(1, top.indices, torch.softmax(top.values / float(t), dim=1))


def main() -> None:
    p = Protector.from_file(None, device="cpu")
    d = load(DATA, 150)
    y = d["y"]
    emb = concept_embeddings(p, d["x"])
    sim = emb @ p.key_embeddings.T
    nearest = sim.argmax(1)
    concepts = ConceptSet([str(i) for i in range(len(p.key_embeddings))], p.key_embeddings)
    print(f"{len(y)} photos of train/imagenette, 10 classes")
    print()
    print("| concept groups G | share of a class in its commonest group | classes with a group of their own | group -> class accuracy |")
    print("|---|---|---|---|")
    for g in (4, 8, 16, 32, 64, 128, 1000):
        groups = nearest if g == 1000 else concepts.coarse_groups(g)[nearest]
        common = commonest(groups, y)
        share = sum(int((groups[y == c] == k).sum()) for c, k in enumerate(common)) / len(y)
        acc = sum(int(torch.bincount(y[groups == u]).max()) for u in groups.unique()) / len(y)
        print(f"| {g} | {share:.3f} | {len(set(common))}/10 | {acc:.3f} |")
    reps = torch.unique(p.bundle.coarse_keys)  # the shipped weights' 64 groups
    member = p.bundle.coarse_keys[None, :] == reps[:, None]
    scores = torch.where(member[None], sim[:, None, :], torch.tensor(-2.0)).amax(-1)  # N x 64: nearest member
    top = scores.topk(3, dim=1).values
    gaps = torch.quantile(top[:, 0] - top[:, 1], torch.tensor([0.1, 0.5, 0.9])).tolist()
    print()
    print(f"shipped groups: similarity to the nearest group {float(top[:, 0].mean()):.3f} on average; gap to the "
          f"second nearest: 10/50/90th percentile {gaps[0]:.3f} / {gaps[1]:.3f} / {gaps[2]:.3f}")
    print()
    print("| texture | weight on class's group | largest weight (mean) |")
    print("|---|---|---|")
    common = commonest(scores.argmax(1), y)
    for name in ("hard", "soft:0.02:2", "soft:0.05:3", "soft:0.1:4"):
        w = blend_weights(name, scores)
        on_class = sum(float(w[y == c][:, k].sum()) for c, k in enumerate(common)) / len(y)
        print(f"| {name} | {on_class:.3f} | {float(w.max(1).values.mean()):.3f} |")


if __name__ == "__main__":
    main()
