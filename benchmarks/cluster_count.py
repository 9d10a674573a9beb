"""How many clusters for `--group-by cluster`: the silhouette's count (protect's) against round(√n) (its rule up to session 37).

    python benchmarks/cluster_count.py ../shared/data/eval/imagenette --ks 6 8 10 12 14 16 20 25 35

A thief's classes decide what protects: each class should carry few patterns (one is best) and no pattern should
span classes. round(√n) clusters (35 for 1,200 photos) spread ten classes over several patterns each. The
silhouette (cosine, on the photos' concept embeddings; ``ucprotect.clustering.silhouette_count``) is a standard
label-free way to pick the count: how much closer each photo is to its own cluster than to the next.
Prints, per k: the share of a class in its commonest cluster (consistency), cluster purity (how often a
cluster's majority class is right) and the silhouette; the first two use the folders as labels, the choice
uses only the silhouette. ``efficacy.py --cluster-count sqrt`` protects with round(√n) clusters instead, through
``use_count``, which also prints the count each row used.

Measured (RESULTS.md, sessions 37-39; ResNet-18 at 112 px, v5, eval/imagenette as one flat folder, thief labels by
folder, seeds 0-2, one Intel VM): the silhouette's count scored 0.44, 0.44, 0.45 against round(√n)'s 0.07, 0.21,
0.19 and single photos' 0.30, 0.36, 0.32; session 38's VM printed 11 clusters for the 1,200 training photos. On
caltech101 it chooses near the top of its range (~84 for 100 folders). Its candidates stop at 2√2000 ≈ 89 clusters
however large the collection (it scores a 2,000-photo sample).
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

from ucprotect.clustering import candidate_counts, kmeans, silhouette, silhouette_count  # noqa: E402


def sqrt_count(n: int) -> int:
    """protect's cluster count up to session 37: round(sqrt n), 2 to 256."""
    return max(2, min(256, round(math.sqrt(n))))


def use_count(rule: str) -> None:
    """Make `protect`'s cluster grouping take ``rule``'s count ("silhouette", its own, or "sqrt", its rule up to
    session 37) and print the count chosen as a comment line (for efficacy.py's rows)."""
    from ucprotect import grouping

    def count(x, seed=0):
        k = silhouette_count(x, seed) if rule == "silhouette" else sqrt_count(len(x))
        print(f"<!-- cluster count by {rule}: {k} for {len(x)} photos -->", flush=True)
        return k

    grouping.silhouette_count = count


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
    print(f"{args.data}: {n} photos, {int(y.max()) + 1} folders; √n = {sqrt_count(n)}; silhouette's choice: "
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
