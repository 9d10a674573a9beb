"""How many clusters for `--group-by cluster`: the shipped √n against a label-free silhouette choice.

    python benchmarks/cluster_count.py ../shared/data/eval/imagenette --ks 6 8 10 12 14 16 20 25 35

A thief's classes decide what protects: each class should carry few patterns (one is best) and no pattern should
span classes. `protect` clusters a flat collection into round(√n) groups (35 for 1,200 photos), which for ten
classes spreads each over several patterns. The silhouette (cosine, on the photos' concept embeddings) is a
standard label-free way to pick the count: how much closer each photo is to its own cluster than to the next.
Prints, per k: the share of a class in its commonest cluster (consistency), cluster purity (how often a
cluster's majority class is right) and the silhouette; the first two use the folders as labels, the choice
uses only the silhouette. ``efficacy.py --cluster-count silhouette`` protects with the silhouette's k.

Measured (RESULTS.md, session 29; resnet18-w16, eval/imagenette, thief labels by folder, seeds 0-2): the silhouette
chose 11 clusters for the 1,200 training photos and scored 0.45, 0.28, 0.52 (mean 0.42) against √n's 0.13, 0.36, 0.26
(0.25); on caltech101 it chooses near the top of its range (~84 for 100 folders). Not protect's default yet: the rule
written before the runs asked two seeds for +0.10 and got +0.09; ResNet-18 decides.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ucprotect.clustering import kmeans  # noqa: E402
from ucprotect.grouping import default_clusters  # noqa: E402


def silhouette(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette with cosine distance (a photo alone in its cluster counts 0, as is usual)."""
    emb = F.normalize(emb.float(), dim=-1)
    k = int(labels.max()) + 1
    onehot = F.one_hot(labels, k).float()
    count = onehot.sum(0)
    total = emb @ (emb.T @ onehot)  # N x k: summed similarity to each cluster's members
    n_own = count[labels]
    own = (total.gather(1, labels[:, None]).squeeze(1) - (emb * emb).sum(1)) / (n_own - 1).clamp(min=1)  # others only
    other = (total / count.clamp(min=1)).masked_fill(onehot.bool() | (count == 0)[None], -2).amax(1)
    s = (own - other) / torch.maximum(1 - other, 1 - own).clamp(min=1e-8)
    return float(torch.where(n_own > 1, s, torch.zeros_like(s)).mean())


def candidate_counts(n: int) -> list[int]:
    """2 to 2√n (at most 256), about 12 % apart."""
    top = max(2, min(256, round(2 * math.sqrt(n))))
    ks = sorted({max(2, round(2 * 1.12 ** i)) for i in range(64)})
    return [k for k in ks if k <= top]


def silhouette_count(emb: torch.Tensor, seed: int = 0, sample: int = 2000) -> int:
    """The count with the best silhouette among ``candidate_counts`` (on at most ``sample`` photos)."""
    if len(emb) > sample:
        emb = emb[torch.randperm(len(emb), generator=torch.Generator().manual_seed(seed))[:sample]]
    scores = {k: silhouette(emb, kmeans(emb, k, seed=seed)[0]) for k in candidate_counts(len(emb)) if k < len(emb)}
    return max(scores, key=scores.get)


def use_silhouette_count() -> None:
    """Make `protect`'s cluster grouping take the silhouette's count instead of √n (for efficacy.py)."""
    from ucprotect import grouping

    plain = grouping.kmeans

    def kmeans_with_count(x, k, seed=0, iters=50):
        if k == grouping.default_clusters(len(x)):  # the collection's own clustering, not super-groups
            k = silhouette_count(x, seed)
            print(f"<!-- cluster count by silhouette: {k} for {len(x)} photos -->", flush=True)
        return plain(x, k, seed=seed, iters=iters)

    grouping.kmeans = kmeans_with_count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="a class-folder dataset (the folders are used only to score the clusters)")
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="counts to print (default: the silhouette's candidates)")
    ap.add_argument("--per-class", type=int, default=150)
    args = ap.parse_args()
    from ucprotect.engine import Protector
    from variants import concept_embeddings, load

    d = load(args.data, args.per_class)
    emb, y = F.normalize(concept_embeddings(Protector.from_file(None, device="cpu"), d["x"]).float(), dim=-1), d["y"]
    n = len(y)
    print(f"{args.data}: {n} photos, {int(y.max()) + 1} folders; √n = {default_clusters(n)}; silhouette's choice: "
          f"{silhouette_count(emb)}\n")
    print("| k | share of a class in its commonest cluster | purity | silhouette |")
    print("|---|---|---|---|")
    for k in args.ks or candidate_counts(n):
        lab = kmeans(emb, k, seed=0)[0]
        share = sum(int(torch.bincount(lab[y == c], minlength=k).max()) for c in range(int(y.max()) + 1)) / n
        purity = sum(int(torch.bincount(y[lab == j]).max()) for j in range(k) if (lab == j).any()) / n
        print(f"| {k} | {share:.3f} | {purity:.3f} | {silhouette(emb, lab):.3f} |", flush=True)


if __name__ == "__main__":
    main()
