"""Perturbation design variants, measured in memory on the *training* data (never on eval/).

    python benchmarks/variants.py square sine sine-0.8 square-mask square-0.6 shipped-construction shipped-construction-mask0.5 none-fine none-coarse64

Each variant perturbs the 224 px images of ``train/imagenette`` (150 per class: 1,200 train / 300 test,
stratified, seed 0), keyed by the class (or, for ``none-*``, by each image's own recognised concept),
adds it within L-inf 8/255, downsamples to 64 px and trains the small CNN for 20 epochs (PAPER.md
measurement 4's setup). Prints one markdown row per variant: PSNR at 224 px, two cheap proxies (mean
cosine of the 64 px perturbations within a class and between classes), clean and protected peak
accuracy, score. No files are written except a tensor cache in the temp folder.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect import imageio  # noqa: E402
from ucprotect.generator import GeneratorConfig, contrast_mask, create_generator  # noqa: E402
from ucprotect.verify import Recipe, load_class_folders, stratified_split, train_victim  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "train" / "imagenette"
EPS = 8 / 255
CACHE = Path(tempfile.gettempdir()) / "ucprotect-variants"


def load(root: Path, per_class: int, size: int = 224) -> dict:
    CACHE.mkdir(exist_ok=True)
    # the folder's whole path names the cache: train/imagenette and eval/imagenette share a last name
    tag = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:8]
    f = CACHE / f"{root.name}-{tag}_{per_class}_{size}.pt"
    if f.exists():
        return torch.load(f)
    ds = load_class_folders(root, per_class, 0)
    x = torch.from_numpy(np.stack([imageio.load_square(p, size) for p in ds.paths])).permute(0, 3, 1, 2).contiguous()
    d = {"x": x, "y": torch.tensor(ds.labels), "paths": [str(p) for p in ds.paths]}
    torch.save(d, f)
    return d


def downsample(x8: torch.Tensor, size: int, resize: str = "torch") -> torch.Tensor:
    """To the victim's size: torch bilinear with antialias, or Pillow bicubic as `verify` loads files."""
    if resize == "pil":
        from PIL import Image

        return torch.stack([torch.from_numpy(np.asarray(Image.fromarray(a.permute(1, 2, 0).numpy()).resize(
            (size, size), Image.BICUBIC))).permute(2, 0, 1) for a in x8])
    x = F.interpolate(x8.float() / 255, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x * 255).round().clamp(0, 255).byte()


def pipeline_keys(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-class keys as `protect --group-by folder` gives them: each class's mean concept embedding,
    keys assigned by grouping.assign_distinct (texture-aware)."""
    from PIL import Image

    from ucprotect.engine import Protector
    from ucprotect.grouping import assign_distinct

    p = Protector.from_file(None, device="cpu")
    emb = torch.cat([p.embed([Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x[i:i + 32]], tta=False)
                     for i in range(0, len(x), 32)])
    means = torch.stack([emb[y == c].mean(0) for c in range(int(y.max()) + 1)])
    return assign_distinct(means, p.key_embeddings, p.texture_similarity)


def gratings(keys: torch.Tensor, h: int, w: int, lo: float = 4, hi: float = 12, square: bool = True, seed: int = 0) -> torch.Tensor:
    """PAPER.md measurement 4's construction: per key a grating of random frequency, orientation, phase
    and random channel signs (no luminance constraint)."""
    n = int(keys.max()) + 1
    g = torch.Generator().manual_seed(seed)
    cyc = lo + (hi - lo) * torch.rand(n, generator=g)
    ang = torch.rand(n, generator=g) * math.pi
    ph = torch.rand(n, generator=g) * 2 * math.pi
    col = torch.randint(0, 2, (n, 3), generator=g).float() * 2 - 1
    s = min(h, w)
    ys, xs = (torch.arange(h) + 0.5) / s, (torch.arange(w) + 0.5) / s
    arg = 2 * math.pi * cyc[keys, None, None] * (torch.sin(ang[keys])[:, None, None] * ys[None, :, None]
                                                  + torch.cos(ang[keys])[:, None, None] * xs[None, None, :]) + ph[keys, None, None]
    wave = torch.sign(torch.sin(arg)) if square else torch.sin(arg)
    return wave[:, None] * col[keys][:, :, None, None]


def concept_embeddings(p, x: torch.Tensor) -> torch.Tensor:
    """Each image's concept embedding as `protect --group-by none` computes it (mirror TTA), cached."""
    from PIL import Image

    h = hashlib.sha1(x.contiguous().numpy().tobytes())  # the images and the weights name the cache, not the count
    h.update(p.key_embeddings.float().contiguous().cpu().numpy().tobytes())
    f = CACHE / f"emb_{len(x)}_{h.hexdigest()[:12]}.pt"
    if not f.exists():
        embs = [p.embed([Image.fromarray(a.permute(1, 2, 0).numpy()) for a in x[i:i + 32]]) for i in range(0, len(x), 32)]
        torch.save(torch.cat(embs), f)
    return torch.load(f)


def concept_keys(d: dict, n_groups: int | None) -> torch.Tensor:
    """Each image's own key as `protect --group-by none` picks it (fine: nearest of 1000 concepts)."""
    from ucprotect.concepts import ConceptSet
    from ucprotect.engine import Protector

    p = Protector.from_file(None, device="cpu")
    nearest = (concept_embeddings(p, d["x"]) @ p.key_embeddings.T).argmax(1)
    if n_groups is None:
        return nearest
    return ConceptSet([str(i) for i in range(len(p.key_embeddings))], p.key_embeddings).coarse_groups(n_groups)[nearest]


def perturbation(name: str, x: torch.Tensor, keys: torch.Tensor, key_map: torch.Tensor | None = None) -> torch.Tensor:
    h, w = x.shape[-2:]
    gen = create_generator(GeneratorConfig()).eval()
    shipped_keys = key_map[keys] if key_map is not None else keys * 97 % 1000
    with torch.no_grad():
        if name in ("square", "none-fine", "none-coarse64", "none-coarse16"):
            return gratings(keys, h, w)
        if name == "sine":
            return gratings(keys, h, w, square=False)
        if name == "sine-0.8":
            return 0.8 * gratings(keys, h, w, square=False)
        if name == "square-0.6":
            return 0.6 * gratings(keys, h, w)
        if name == "square-mask":
            return gratings(keys, h, w) * contrast_mask(x, 0.3, 0.08, 224)
        if name == "shipped-construction":  # the generator's default textures (12-24 cycles; 8-16 before session 9)
            return gen.render(shipped_keys, h, w)
        if name == "shipped-construction-mask0.5":
            return gen.render(shipped_keys, h, w) * contrast_mask(x, 0.5, 0.08, 224)
    raise SystemExit(f"unknown variant {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--per-class", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--keys", choices=["class97", "pipeline"], default="class97",
                    help="shipped-construction keys: class index * 97 mod 1000, or those `protect --group-by folder` picks")
    ap.add_argument("--resize", choices=["torch", "pil"], default="torch",
                    help="downsampling to 64 px: torch bilinear+antialias, or Pillow bicubic as `verify` does")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    d = load(Path(args.data), args.per_class)
    x, y = d["x"], d["y"]
    tr, te = (torch.tensor(i) for i in stratified_split(y.tolist(), 0.2, 0))
    n_cls = int(y.max()) + 1
    recipe = Recipe(victim="small-cnn", image_size=64, epochs=args.epochs, batch_size=64, lr=0.05, seed=0)
    clean_tr, test = downsample(x[tr], 64, args.resize), downsample(x[te], 64, args.resize)
    key_map = pipeline_keys(x[tr], y[tr]) if args.keys == "pipeline" else None
    clean = max(train_victim(clean_tr, y[tr], test, y[te], n_cls, recipe))
    print(f"data {args.data}: {len(tr)} train / {len(te)} test; small CNN 64 px, {args.epochs} epochs; keys {args.keys}; "
          f"resize {args.resize}; clean peak {clean:.3f}")
    print("| variant | PSNR 224 px | within-class cos | between-class cos | protected peak | score |")
    print("|---|---|---|---|---|---|")
    for name in args.variants:
        t0 = time.perf_counter()
        keys = y[tr]
        if name.startswith("none-"):
            keys = concept_keys(d, None if name == "none-fine" else int(name.removeprefix("none-coarse")))[tr]
        xf = x[tr].float() / 255
        prot8 = ((xf + perturbation(name, xf, keys, key_map) * EPS).clamp(0, 1) * 255).round().byte()
        psnr = float(10 * torch.log10(1 / ((prot8.float() / 255 - xf) ** 2).mean()))
        small = downsample(prot8, 64, args.resize)
        dd = F.normalize((small.float() - clean_tr.float()).flatten(1), dim=1)
        sim, same = dd @ dd.T, (y[tr][:, None] == y[tr][None]).float() - torch.eye(len(tr))
        within = float((sim * same).sum() / same.sum())
        between = float((sim * (1 - same - torch.eye(len(tr)))).sum() / (1 - same - torch.eye(len(tr))).sum())
        peak = max(train_victim(small, y[tr], test, y[te], n_cls, recipe))
        print(f"| {name} | {psnr:.1f} | {within:.3f} | {between:.3f} | {peak:.3f} | {(clean - peak) / (clean - 1 / n_cls):.2f} |"
              f" <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
