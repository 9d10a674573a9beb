"""How often the silhouette's cluster count and seeded k-means find planted groups (seconds on a CPU).

    python benchmarks/silhouette_fixtures.py --groups 4 6 7 8 10 --fixtures 20

Each fixture plants G tight groups of uneven size (15 to 40 unit vectors around random centres in 32-D, noise 0.05),
as a flat collection of G kinds of photo would look in concept space. Per G it prints how often
``silhouette_count`` returns G, and how often one k-means run with the right k (five initialisation seeds per
fixture) recovers the groups exactly. `protect --group-by cluster` runs k-means once with seed 0 (single-start
k-means++), so a merged pair of groups there means two kinds of photo share one pattern.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ucprotect.clustering import kmeans, silhouette_count  # noqa: E402


def fixture(groups: int, seed: int, dim: int = 32, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(groups, dim, generator=g), dim=-1)
    sizes = torch.randint(15, 41, (groups,), generator=g)
    truth = torch.cat([torch.full((int(n),), i) for i, n in enumerate(sizes)])
    return F.normalize(centres[truth] + noise * torch.randn(len(truth), dim, generator=g), dim=-1), truth


def recovered(labels: torch.Tensor, truth: torch.Tensor) -> bool:
    """Every planted group is one cluster and every cluster one planted group."""
    pairs = set(zip(truth.tolist(), labels.tolist()))
    return len(pairs) == len(set(truth.tolist())) == len(set(labels.tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, nargs="+", default=[4, 6, 7, 8, 10])
    ap.add_argument("--fixtures", type=int, default=20)
    ap.add_argument("--init-seeds", type=int, default=5)
    args = ap.parse_args()
    print("| planted groups | silhouette count = groups | counts it chose | k-means with the right k recovers them (runs) |")
    print("|---|---|---|---|")
    for groups in args.groups:
        chosen, hits, runs = [], 0, 0
        for s in range(args.fixtures):
            x, truth = fixture(groups, seed=1000 * groups + s)
            chosen.append(silhouette_count(x))
            for init in range(args.init_seeds):
                hits += recovered(kmeans(x, groups, seed=init)[0], truth)
                runs += 1
        right = sum(c == groups for c in chosen)
        spread = ", ".join(f"{k}: {chosen.count(k)}" for k in sorted(set(chosen)))
        print(f"| {groups} | {right}/{args.fixtures} | {spread} | {hits}/{runs} |", flush=True)


if __name__ == "__main__":
    main()
