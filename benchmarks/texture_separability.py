"""How many textures can a victim tell apart? The texture alone as the label, in memory on train/ (never eval/).

    python benchmarks/texture_separability.py grating:10 grating:100 plaid:100 --seeds 0

A collection with many groups (caltech101: 100 folders) needs that many textures a victim learns apart as
easily as the photos' content. This measures that capacity directly: each of the 1,500 ``train/imagenette``
images (150 per class, split 1,200 / 300 as ``families.py``) gets a texture label drawn at random
(balanced, unrelated to its content), the label's texture is added within L-inf 8/255 at 224 px, Pillow
bicubic to 64 px, and the small CNN (random crop + flip, 20 epochs) learns the texture labels; test images
carry their own labels' textures. Peak test accuracy against chance 1/N says how separable N textures of a
family are under natural-image clutter and the victim's augmentation. Families as in ``families.py``:
``grating`` (one square wave, the shipped construction; ``--cycles`` sets its band, v1's 8-16 by default), ``plaid``
(sign of the sum of two sine waves: what a pair of keys would draw with the two-level lookup) and ``rgb``
(each colour channel its own full-amplitude square-wave grating: three frequency vectors), each set drawn
least-alike among 16 candidates; ``tile`` (a random ``--cells`` x ``--cells`` pattern of +-1 per channel,
repeated ``--tiles`` times per short side: a periodic texture with far more distinct members than gratings)
and ``ltile`` (the same with one +-1 pattern in a luminance-bearing colour), drawn at random; ``halves`` (v4's
layout: the key's colour wave across the top half, the same wave in grey at ``--factor`` x the frequency across the
bottom; run it with ``--cycles 2 4`` for v4's band) and ``halvesind`` (the bottom wave with its own orientation,
frequency and phase: a product code of two gratings) and ``halvescol`` (the bottom wave in the key's colours, not
grey). ``--victim resnet18`` trains the issue's victim instead; ``--defense NAME`` puts the training images through
one of verify's defences first (at 64 px, as efficacy.py does), to measure what capacity survives it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from families import POOL, draw_distinct, family_params, likeness, render, render_halves, render_tiles, tile_params  # noqa: E402
from ucprotect.verify import Recipe, apply_defense, stratified_split, train_victim  # noqa: E402
from variants import DATA, downsample, load  # noqa: E402


def textures(family: str, seed: int, args: argparse.Namespace) -> tuple[torch.Tensor, Callable]:
    """A family's POOL x POOL likeness and its renderer ``draw(keys, h, w)``."""
    if family in ("tile", "ltile"):  # random +-1 cells: all but never alike, drawn at random (likeness 0)
        p = tile_params(seed, args.cells, tuple(args.tiles), family == "ltile")
        return torch.zeros(POOL, POOL), lambda keys, h, w: render_tiles(p, keys, h, w)
    if family in ("halves", "halvesind", "halvescol"):  # v4's layout; likeness of the wave(s) that tell keys apart
        p = family_params(seed, 2, tuple(args.cycles))
        ind, col = family == "halvesind", family == "halvescol"
        return likeness(p, 2 if ind else 1), lambda keys, h, w: render_halves(p, keys, h, w, args.factor, ind, col)
    comps, rgb = {"grating": 1, "plaid": 2, "rgb": 3}[family], family == "rgb"
    p = family_params(seed, 3 if rgb else 2, tuple(args.cycles))
    return likeness(p, comps, per_channel=rgb), lambda keys, h, w: render(p, keys, comps, h, w, rgb)


def settings(family: str, args: argparse.Namespace) -> str:
    """The options that differ from the defaults, for the row's label."""
    out = [f" candidates {args.candidates}"] if args.candidates != 16 else []
    out += [f" epsilon {args.epsilon:g}"] if args.epsilon != 8 else []
    if family in ("tile", "ltile"):
        out += [f" cells {args.cells}"] if args.cells != 4 else []
        out += [f" tiles {args.tiles[0]:g}-{args.tiles[1]:g}"] if args.tiles != [4, 8] else []
    else:
        out += [f" cycles {args.cycles[0]:g}-{args.cycles[1]:g}"] if args.cycles != [8, 16] else []
        out += [f" factor {args.factor:g}"] if family.startswith("halves") and args.factor != 6 else []
    out += [f" {args.victim}"] if args.victim != "small-cnn" else []
    out += [f" through {args.defense}"] if args.defense != "none" else []
    return "".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="FAMILY:N, FAMILY in grating, plaid, rgb, tile, ltile, halves, halvesind, halvescol")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--victim", choices=["small-cnn", "resnet18"], default="small-cnn",
                    help="resnet18: the issue's victim (bf16 on the CPU, ~4x the small CNN's time), to check the proxy against it")
    ap.add_argument("--candidates", type=int, default=16, help="each texture the least alike among this many (1000: all)")
    ap.add_argument("--cycles", type=float, nargs=2, default=[8, 16], metavar=("LO", "HI"),
                    help="grating frequencies, cycles per short side (default: v1's 8 16; v2 ships 12 24)")
    ap.add_argument("--cells", type=int, default=4, help="tile: cells per tile side")
    ap.add_argument("--tiles", type=float, nargs=2, default=[4, 8], metavar=("LO", "HI"), help="tile: tiles per short side")
    ap.add_argument("--factor", type=float, default=6.0, help="halves, halvesind: the grey wave's frequency over the band (v4: 6)")
    ap.add_argument("--defense", default="none", help="one of verify's defences on the training images (blur:1.0, downup:0.5, ...)")
    ap.add_argument("--epsilon", type=float, default=8, help="L-inf budget in 0-255 units (8 as shipped; more only as a diagnostic)")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    d = load(DATA, 150)
    x, y = d["x"], d["y"]
    tr, te = (torch.tensor(i) for i in stratified_split(y.tolist(), 0.2, 0))
    print("| variant | seed | worst pair likeness | pairs > 0.5 | chance | texture-label peak accuracy | curve |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        recipe = Recipe(victim=args.victim, image_size=64, epochs=args.epochs, batch_size=64, lr=0.05, seed=seed,
                        bf16=args.victim == "resnet18")
        for name in args.variants:
            t0 = time.perf_counter()
            family, n = name.split(":")
            n = int(n)
            sim, draw = textures(family, seed, args)
            keys = draw_distinct(n, sim, seed, args.candidates)
            s = sim[keys][:, keys].clone()
            s.fill_diagonal_(0)
            g = torch.Generator().manual_seed(3000 + seed)
            label = torch.randperm(len(x), generator=g) % n  # balanced, unrelated to the content
            texture = torch.cat([draw(keys[label[i:i + 100]], 224, 224) for i in range(0, len(x), 100)])
            prot8 = ((x.float() / 255 + texture * (args.epsilon / 255)).clamp(0, 1) * 255).round().byte()
            small = downsample(prot8, 64, "pil")
            train = small[tr] if args.defense == "none" else apply_defense(args.defense, small[tr])
            curve = train_victim(train, label[tr], small[te], label[te], n, recipe, args.defense)
            name += settings(family, args)
            print(f"| {name} | {seed} | {float(s.max()):.2f} | {int((s > 0.5).sum()) // 2} | {1 / n:.2f} | {max(curve):.3f} | "
                  f"{' '.join(f'{a:.2f}' for a in curve)} | <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
