"""How well label-free super-groups of a collection's folders line up with a thief's merged labels.

    python benchmarks/alignment.py

A two-level texture (benchmarks/families.py ``hier``) protects when the folders a thief merges into one class
share one wave. Without labels, that wave must come from something the tool can compute; this prints, for
eval/caltech101 (efficacy.py's train split: 16 per class, seed 0) and the thief's ``clusters:20`` labels
(k-means of the class names' text embeddings, as verify does), how well candidate super-groups of the 100
folders line up: the weights' coarse concept groups, k-means of the folders' mean embeddings, the nearest
fine concept. Purity: share of each thief class's folders in its majority super-group; pair recall: share of
folder pairs of one thief class that share a super-group; pair precision: share of super-group pairs that are
in one thief class. Before them, the ceiling for any key scheme that is a function of the folders' mean
embeddings (hard super-groups or textures that vary smoothly with the embedding): how well the cosine of two
folders' means tells merged pairs from the rest (AUC), and how often a folder's nearest folder is merged with it.
Then the same for super-groups made from the folders' *names* (k-means of their sentence embeddings, the words a
text-clustering thief works from), against thieves with other k-means seeds and numbers of clusters, and the
thief's own clusters re-drawn with another seed: how stable a thief's merges are is the ceiling for any scheme
that cannot know the thief's seed. Only measures; nothing is tuned on these numbers.
"""
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ucprotect import imageio  # noqa: E402
from ucprotect.backbones._text import SentenceEncoder  # noqa: E402
from ucprotect.clustering import kmeans  # noqa: E402
from ucprotect.engine import Protector  # noqa: E402
from ucprotect.verify import cluster_labels, load_class_folders, stratified_split  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "caltech101"


def agreement(sup: torch.Tensor, thief: torch.Tensor) -> tuple[float, float, float]:
    """(purity, pair recall, pair precision) of super-groups ``sup`` against the thief's classes."""
    # purity: share of each thief class's folders in its majority super-group, weighted by folders
    pur = sum(int(torch.bincount(sup[thief == t]).max()) for t in thief.unique()) / len(sup)
    # fragmentation: super-groups per thief class; pairs of folders in one thief class sharing a super-group
    same_t = thief[:, None] == thief[None]
    same_s = sup[:, None] == sup[None]
    off = ~torch.eye(len(sup), dtype=torch.bool)
    recall = float((same_t & same_s & off).sum() / (same_t & off).sum())
    precision = float((same_t & same_s & off).sum() / (same_s & off).sum().clamp(min=1))
    return pur, recall, precision


def report(name: str, sup: torch.Tensor, thief: torch.Tensor) -> None:
    pur, recall, precision = agreement(sup, thief)
    print(f"{name}: {int(sup.unique().numel())} super-groups; purity {pur:.2f}; pair recall {recall:.2f}; pair precision {precision:.2f}")


def name_groups(folders: list[str], encode) -> None:
    """Super-groups from the folder names' text, against thieves of other seeds and cluster counts."""
    texts = [f"a photo of a {re.sub(r'[_-]+', ' ', f).strip()}" for f in folders]
    emb = encode(texts)
    ours = {k: kmeans(emb, k, seed=0)[0] for k in (10, 20)}
    print("\n| thief labels | thief seed | thief re-drawn with seed+1: purity / pair recall | names k=10 | names k=20 |")
    print("|---|---|---|---|---|")
    for n in (10, 20, 32):
        for seed in (0, 1, 2):
            thief = torch.tensor(cluster_labels(folders, n, encode, seed))
            again = torch.tensor(cluster_labels(folders, n, encode, seed + 1))
            cells = [agreement(again, thief)] + [agreement(ours[k], thief) for k in (10, 20)]
            print(f"| clusters:{n} | {seed} | " + " | ".join(f"{c[0]:.2f} / {c[1]:.2f}" for c in cells) + " |")


def main() -> None:
    p = Protector.from_file(None, device="cpu")
    ds = load_class_folders(ROOT, 16, 0)
    tr, _ = stratified_split(ds.labels, 0.2, 0)
    paths = [ds.paths[i] for i in tr]
    thumbs = [imageio.load_thumbnail(q, 224, imageio.DEFAULT_MAX_PIXELS, 1.0) for q in paths]
    emb = torch.cat([p.embed(thumbs[j:j + 32], False) for j in range(0, len(thumbs), 32)])
    names = [q.relative_to(ds.root).parent.as_posix() for q in paths]
    folders = sorted(set(names))
    means = torch.nn.functional.normalize(torch.stack([emb[[k for k, n in enumerate(names) if n == f]].mean(0) for f in folders]), dim=-1)
    encode = SentenceEncoder().encode
    thief = torch.tensor(cluster_labels(ds.class_names, 20, encode, 0))[[ds.class_names.index(f) for f in folders]]
    sim = means @ means.T
    i, j = torch.triu_indices(len(means), len(means), 1)
    merged = thief[i] == thief[j]
    pos, neg = sim[i, j][merged], sim[i, j][~merged]
    auc = float((pos[:, None] > neg[None]).float().mean())
    nearest_folder = sim.fill_diagonal_(-2).argmax(1)
    sizes = torch.bincount(thief).float()
    chance = float((sizes * (sizes - 1)).sum() / (len(thief) * (len(thief) - 1)))
    print(f"folder-mean cosine, merged pairs vs the rest: AUC {auc:.2f} (mean {float(pos.mean()):.3f} vs {float(neg.mean()):.3f}); "
          f"nearest folder merged with it: {float((thief[nearest_folder] == thief).float().mean()):.2f} (chance {chance:.2f})")
    nearest = (means @ p.key_embeddings.T).argmax(1)
    report("coarse concept (the weights' 64 groups)", p.bundle.coarse_keys[nearest], thief)
    for k in (10, 20, 32):
        report(f"k-means of folder means, k={k}", kmeans(means, k, seed=0)[0], thief)
    report("nearest fine concept", nearest, thief)
    assert folders == ds.class_names  # the thief clusters the names in this order
    name_groups(folders, encode)


if __name__ == "__main__":
    main()
