"""Texture families vs collection size, in memory on the *training* data (never on eval/).

    python benchmarks/families.py grating:10 grating:50 plaid:10 plaid:50 --seeds 0 1

A collection with many folders needs many textures that a victim can tell apart; one square-wave grating
per key lives in a small space (frequency x orientation x 3 colours, a mirror image counting as the same),
so 100 folders cannot all differ. Each variant ``FAMILY:N`` splits the 10 classes of ``train/imagenette``
(150 per class: 1,200 train / 300 test, stratified, seed 0) into N/10 sub-folders, draws one texture per
sub-folder (the least alike among 16 random candidates, as grouping.assign_distinct does among the 16
nearest concepts), adds it within L-inf 8/255 at 224 px, downsamples to 64 px (``--image-size``) with Pillow bicubic,
trains the small CNN (20 epochs) on the 10 class labels: a thief's classes that each hold several folders, as
caltech101 under ``clusters:20``. Families: ``grating`` (the construction shipped in v1: one square wave, 8-16
cycles per short side, luminance-bearing colour signs), ``plaid`` (the sign of the sum of two such sine
waves, one colour: full amplitude like a grating, but a 2-D pattern with two frequency vectors) and ``hier``
(a plaid whose first wave is shared by the class's folders and whose second is the folder's own: what a
two-level concept code would give if the folders a thief merges were known to share a coarse concept). With
``--candidates`` each texture is the least alike among that many random candidates instead of 16 (the pool's
size, 1000: the most spread set a greedy draw finds); ``--cycles LO HI`` sets the gratings' frequency range
(cycles per short side; 8-16 by default, v1's band). With
``--align Q`` each folder keeps its class's shared wave with probability Q and otherwise takes another class's
(a label-free super-grouping lines up with a thief's merges only partly; benchmarks/alignment.py); ``--super K``
lets neighbouring classes share one wave (K shared waves for the 10 classes: ``hier:10 --super 3`` is what
super-groups cost a thief who labels by folder), ``--shared-weight`` weighs the shared wave in the sum.
``twoscale`` is a plaid whose first wave has half the frequency (a coarse wave that a thief's blur or
down-up resize leaves, beside a fine one that teaches fastest undefended); ``--defenses blur:1.0 downup:0.5``
adds a row per defence, applied to the protected 64 px images as `verify` does. ``tiles`` takes its textures from
``--tiles FILE ...`` (a row per file; periodic tiles made by `benchmarks/learned_tiles.py optimise`; tile k for folder k).
``tone`` keys the pixel's own luminance instead of its position (a class-wise tone curve, like a colour grade within
the budget: the sign of a sine of the luminance Y, ``--cycles`` periods over Y's range 0-1, in the key's colour signs):
it needs no spatial structure, so crops, resizing and blur leave it wherever the photo is smooth.
``halves`` is v4's layout (the key's grating in its colour across the top half, in grey at 6x the frequency across
the bottom half; ``--cycles 2 4`` as shipped). ``octaves`` is a plaid of three waves an octave apart (the band, twice
and four times it, each its own angle and phase), for thieves who train at different sizes: a victim learns a
grating best at a period of a few of its own pixels (RESULTS.md, session 31). ``ar`` draws each image a fresh sample
of its folder's autoregressive process (class-wise AR perturbations, on an ``--ar-cells`` grid), ``arfix`` one
sample per folder (both ~0 on resnet18-w16: RESULTS.md, session 29). Prints one markdown row per variant and seed:
PSNR, how alike the drawn textures are (worst pair, pairs over 0.5), clean and protected peak accuracy, score, and
the per-epoch protected curve.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ucprotect.generator import LUMA_SIGNS, grating_frequency_likeness  # noqa: E402
from ucprotect.verify import Recipe, apply_defense, stratified_split, train_victim  # noqa: E402
from variants import DATA, EPS, downsample, load  # noqa: E402

POOL = 1000  # textures in a family, as many as concept keys


def family_params(seed: int = 0, components: int = 2, cycles: tuple[float, float] = (8, 16)) -> dict:
    """POOL textures: per component a frequency (``cycles`` per short side, default 8-16), an angle; per
    texture a colour and phases."""
    g = torch.Generator().manual_seed(seed)
    signs = torch.tensor(LUMA_SIGNS, dtype=torch.float32)
    lo, hi = cycles
    return {"cyc": lo + (hi - lo) * torch.rand(POOL, components, generator=g), "ang": torch.rand(POOL, components, generator=g) * math.pi,
            "phase": torch.rand(POOL, components, generator=g) * 2 * math.pi,
            "colour": signs[torch.randint(len(signs), (POOL,), generator=g)] * (torch.randint(0, 2, (POOL, 1), generator=g) * 2 - 1)}


def likeness(p: dict, components: int, per_channel: bool = False) -> torch.Tensor:
    """POOL x POOL likeness under shifts and flips (as ConceptTextureGenerator.texture_similarity, mirror on).
    A plaid looks like another only if each of its components matches one of the other's; a per-channel
    texture (``rgb``) is as alike as its channels' gratings on average."""
    freq = grating_frequency_likeness(p["cyc"][:, :components], p["ang"][:, :components])  # K x K x J x J
    if per_channel:
        return freq.diagonal(dim1=2, dim2=3).mean(-1)
    col = torch.nn.functional.normalize(p["colour"], dim=-1)
    colour = (col @ col.T).abs()
    # mirror images must match as a whole; a per-component max is a fair, slightly lenient approximation
    return freq.amax(-1).amin(-1) * colour


def draw_distinct(n: int, sim: torch.Tensor, seed: int, candidates: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    order = torch.randperm(POOL, generator=g).tolist()
    chosen = [order.pop(0)]
    while len(chosen) < n:
        cand = torch.tensor(order[:candidates])
        pick = int(cand[sim[cand][:, chosen].amax(1).argmin()])
        order.remove(pick)
        chosen.append(pick)
    return torch.tensor(chosen)


def sines(p: dict, keys: torch.Tensor, components: int, h: int, w: int) -> torch.Tensor:
    """The first ``components`` sine waves of each key's texture on an h x w image (B x J x H x W)."""
    s = min(h, w)
    ys, xs = ((torch.arange(h) + 0.5) / s)[None, None, :, None], ((torch.arange(w) + 0.5) / s)[None, None, None, :]
    cyc, ang, ph = (p[k][keys, :components, None, None] for k in ("cyc", "ang", "phase"))
    return torch.sin(2 * math.pi * cyc * (torch.sin(ang) * ys + torch.cos(ang) * xs) + ph)


def render(p: dict, keys: torch.Tensor, components: int, h: int, w: int, per_channel: bool = False) -> torch.Tensor:
    """Square waves in [-1, 1] (B x 3 x H x W): the sign of the sum of the components' sines in the key's colour
    signs, or with ``per_channel`` (3 components) each colour channel its own full-amplitude grating."""
    if per_channel:
        return torch.sign(sines(p, keys, 3, h, w))
    wave = torch.sign(sines(p, keys, components, h, w).sum(1))
    return wave[:, None] * p["colour"][keys][:, :, None, None]


def render_halves(p: dict, keys: torch.Tensor, h: int, w: int, factor: float = 6.0, independent: bool = False,
                  bottom_colour: bool = False) -> torch.Tensor:
    """v4's layout (B x 3 x H x W, values +-1): the key's first wave in its colour signs across the top half, a grey
    wave at ``factor`` x the frequency across the bottom half: the same wave's orientation and phase (as shipped), or
    with ``independent`` the key's second wave (its own orientation, frequency and phase: a product code of two
    gratings, more distinct members for many groups). ``bottom_colour``: the bottom wave in the key's colour signs
    too (v2's fine colour grating in the bottom half, for its capacity, at the price of grayscale's full luminance)."""
    scaled = dict(p, cyc=p["cyc"] * p["cyc"].new_tensor([1.0, factor]))
    if not independent:
        scaled["ang"], scaled["phase"] = p["ang"][:, :1].expand(-1, 2), p["phase"][:, :1].expand(-1, 2)
    waves = torch.sign(sines(scaled, keys, 2, h, w))
    top = (torch.arange(h) < h / 2).view(1, 1, -1, 1)
    colour = p["colour"][keys][:, :, None, None]
    return torch.where(top, waves[:, :1] * colour, waves[:, 1:] * colour if bottom_colour else waves[:, 1:].expand(-1, 3, -1, -1))


def tile_params(seed: int = 0, cells: int = 4, tiles: tuple[float, float] = (4, 8), luma: bool = False) -> dict:
    """POOL tiled textures: each a random cells x cells pattern of +-1 per channel (``luma``: one +-1 pattern
    in a luminance-bearing colour, as gratings), repeated ``tiles`` times per short side (uniform in the
    range), at a random offset: a periodic texture (so it survives crops) with far more members than gratings."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = tiles
    p = {"m": lo + (hi - lo) * torch.rand(POOL, generator=g), "off": torch.rand(POOL, 2, generator=g),
         "cells": torch.randint(0, 2, (POOL, 3, cells, cells), generator=g).float() * 2 - 1}
    if luma:
        signs = torch.tensor(LUMA_SIGNS, dtype=torch.float32)
        colour = signs[torch.randint(len(signs), (POOL,), generator=g)]
        p["cells"] = p["cells"][:, :1] * colour[:, :, None, None]
    return p


def render_tiles(p: dict, keys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The tiled textures of ``keys`` on an h x w image (B x 3 x H x W, values +-1, nearest-cell edges)."""
    s, c = min(h, w), p["cells"].shape[-1]
    m, off, cells = p["m"][keys, None], p["off"][keys], p["cells"][keys]
    iy = (torch.frac((torch.arange(h) + 0.5) / s * m + off[:, :1]) * c).long().clamp(max=c - 1)  # B x H
    ix = (torch.frac((torch.arange(w) + 0.5) / s * m + off[:, 1:]) * c).long().clamp(max=c - 1)  # B x W
    b = torch.arange(len(keys))[:, None, None]
    return cells.permute(0, 2, 3, 1)[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)


def ar_coefficients(seed: int, n: int) -> torch.Tensor:
    """n x 3 x 8 causal 3 x 3 autoregressive filters (one per colour channel), as class-wise autoregressive
    perturbations draw them (Sandoval-Segura et al., NeurIPS 2022): random, L1-normalised to 0.95 so the process is
    stable. A 3 x 3 convolution with the filter and -1 at the centre turns its samples into white noise."""
    g = torch.Generator().manual_seed(3000 + seed)
    a = torch.randn(n, 3, 8, generator=g)
    return 0.95 * a / a.abs().sum(-1, keepdim=True)


AR_TAPS = [(-2, -2), (-2, -1), (-2, 0), (-1, -2), (-1, -1), (-1, 0), (0, -2), (0, -1)]  # the window before (0, 0)


def render_ar(coef: torch.Tensor, cells: int, size: int, seed: int) -> torch.Tensor:
    """One sample (B x 3 x size x size, values in [-1, 1]) of each row's autoregressive process, drawn on a grid of
    ``cells`` per side (so its pixels are the victim's pixels when cells = the victim's size), scaled by its standard
    deviation at 3 (most values saturate at +-1: an L-inf budget used nearly in full, as a square wave uses it, where
    the paper bounds the L2 norm) after a bilinear upsampling."""
    g = torch.Generator().manual_seed(4000 + seed)
    b = len(coef)
    x = torch.randn(b, 3, cells + 2, cells + 2, generator=g)  # the innovations; rows/cols 0-1 stay as start noise
    for i in range(2, cells + 2):
        for j in range(2, cells + 2):
            x[:, :, i, j] += sum(coef[:, :, k] * x[:, :, i + di, j + dj] for k, (di, dj) in enumerate(AR_TAPS))
    x = torch.nn.functional.interpolate(x[:, :, 2:, 2:], size=(size, size), mode="bilinear", align_corners=False)
    return (3 * x / x.flatten(2).std(-1)[..., None, None]).clamp(-1, 1)


def render_hier(p: dict, class_keys: torch.Tensor, folder_keys: torch.Tensor, h: int, w: int, weight: float = 1.0,
                colour: str = "shared") -> torch.Tensor:
    """A two-level code: the sign of a sum of the class-level texture's first wave and the folder's own,
    in the class texture's colour. Folders a thief merges share one component; each folder has its own."""
    waves = weight * sines(p, class_keys, 1, h, w)[:, 0] + sines(p, folder_keys, 1, h, w)[:, 0]
    return torch.sign(waves)[:, None] * p["colour"][class_keys if colour == "shared" else folder_keys][:, :, None, None]


def render_tone(p: dict, keys: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Each image's key as a tone curve (B x 3 x H x W, values +-1): the sign of a sine of the pixel's own luminance
    (``cyc`` periods over 0-1, the key's phase) in the key's colour signs. Pixels of one brightness move the same
    way in every photo of the folder, wherever they sit."""
    luma = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    cyc, ph = p["cyc"][keys, 0].view(-1, 1, 1, 1), p["phase"][keys, 0].view(-1, 1, 1, 1)
    return torch.sign(torch.sin(2 * math.pi * cyc * luma + ph)) * p["colour"][keys][:, :, None, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="FAMILY:N, FAMILY in grating, plaid, hier, twoscale, halves, octaves, tiles, ar, arfix, tone; N a multiple of 10")
    ap.add_argument("--defenses", nargs="*", default=[], help="also train on the protected images after each defence")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--align", type=float, default=1.0, help="hier: share of folders whose shared wave is their class's")
    ap.add_argument("--super", type=int, default=10, help="hier: shared waves for the 10 classes (fewer: neighbouring classes share one)")
    ap.add_argument("--colour", choices=["shared", "own"], default="shared", help="hier: colour signs of the shared or the own wave's texture")
    ap.add_argument("--shared-weight", type=float, default=1.0, help="hier: weight of the shared wave in the sum (own wave: 1)")
    ap.add_argument("--candidates", type=int, nargs="+", default=[16],
                    help="each texture is the least alike among this many random candidates (16, as protect does among "
                         "the nearest concepts; the pool's size: the most spread set); several values: one row each")
    ap.add_argument("--cycles", type=float, nargs="+", default=[8, 16], metavar="LO HI",
                    help="grating frequencies, cycles per short side (default: v1's 8 16; v2 shipped 12 24, v3 ships 4 8); "
                         "more pairs: a row per band")
    ap.add_argument("--victim", default="small-cnn", help="the victim (resnet18-w16: the CPU stand-in for ResNet-18)")
    ap.add_argument("--image-size", type=int, default=64,
                    help="the thief's training size: the protected 224 px images are resized to it (224: not resized; "
                         "above 96 px the ResNets take the ImageNet stem)")
    ap.add_argument("--ar-cells", type=int, default=64, help="ar, arfix: grid cells per side of the autoregressive process")
    ap.add_argument("--tiles", type=Path, nargs="+", default=[], help="tiles: files of `learned_tiles.py optimise` (a row each)")
    args = ap.parse_args()
    if len(args.cycles) % 2:
        ap.error("--cycles takes pairs LO HI")
    bands = [tuple(args.cycles[i:i + 2]) for i in range(0, len(args.cycles), 2)]
    torch.set_num_threads(min(2, torch.get_num_threads()))
    d = load(DATA, 150)
    x, y = d["x"], d["y"]
    tr, te = (torch.tensor(i) for i in stratified_split(y.tolist(), 0.2, 0))
    size = args.image_size
    clean_tr, test = downsample(x[tr], size, "pil"), downsample(x[te], size, "pil")
    print("| variant | seed | PSNR 224 px | worst pair likeness | pairs > 0.5 | clean peak | protected peak | score | protected curve |")
    print("|---|---|---|---|---|---|---|---|---|")
    clean: dict[int, float] = {}
    for seed in args.seeds:
        recipe = Recipe(victim=args.victim, image_size=size, epochs=args.epochs, batch_size=64, lr=0.05, seed=seed)
        clean[seed] = max(train_victim(clean_tr, y[tr], test, y[te], 10, recipe))
        runs = [(v, c, f, b) for v in args.variants for b in bands for c in args.candidates
                for f in (args.tiles if v.startswith("tiles:") else [None])]
        for name, candidates, tiles_file, band in runs:
            t0 = time.perf_counter()
            family, n = name.split(":")
            n, comps = int(n), {"grating": 1, "plaid": 2, "hier": 1, "twoscale": 2, "tiles": 1, "ar": 1, "arfix": 1, "tone": 1, "halves": 1, "octaves": 3}[family]
            p = family_params(seed, max(2, comps), band)
            if family == "twoscale":
                p["cyc"][:, 0] /= 2
            if family == "octaves":  # component j one octave above component j - 1's band: 1x, 2x, 4x the band
                p["cyc"] *= torch.tensor([1.0, 2.0, 4.0])
            sim = likeness(p, comps)
            keys = draw_distinct(n + (10 if family == "hier" else 0), sim, seed, candidates)
            name += f" candidates {candidates}" if candidates != 16 else ""
            name += f" cycles {band[0]:g}-{band[1]:g}" if band != (8, 16) else ""
            name += f" on {args.victim}" if args.victim != "small-cnn" else ""
            name += f" at {size} px" if size != 64 else ""
            class_keys, keys = (keys[:10], keys[10:]) if family == "hier" else (None, keys)
            per = n // 10
            # sub-folder of each training image: its rank within its class, dealt round-robin
            rank = torch.zeros(len(tr), dtype=torch.long)
            for c in range(10):
                idx = (y[tr] == c).nonzero().squeeze(1)
                rank[idx] = torch.arange(len(idx)) % per
            folder = y[tr] * per + rank
            s = sim[keys][:, keys].clone()
            s.fill_diagonal_(0)
            xf = x[tr].float() / 255
            if family == "hier":  # super-group of each folder: its class, or (1 - align) of the time another class
                g = torch.Generator().manual_seed(2000 + seed)
                sup = torch.arange(n) // per * args.super // 10  # super-group of each folder's class
                moved = torch.rand(n, generator=g) >= args.align
                sup[moved] = (sup[moved] + torch.randint(1, args.super, (int(moved.sum()),), generator=g)) % args.super
                name += "".join(f" {k} {v:g}" for k, v, default in (("align", args.align, 1), ("super", args.super, 10),
                                                                    ("shared-weight", args.shared_weight, 1)) if v != default)
                name += " own colour" if args.colour == "own" else ""
            if family in ("ar", "arfix"):  # a fresh sample for every image, or one per folder
                coef = ar_coefficients(seed, n)
                name += f" {args.ar_cells} cells"
                texture = (render_ar(coef[folder], args.ar_cells, 224, seed) if family == "ar"
                           else render_ar(coef, args.ar_cells, 224, seed)[folder])
            elif family == "tiles":
                from learned_tiles import tiled

                tiles = torch.load(tiles_file)["tiles"]
                name += f" {tiles_file.name}"
                texture = tiled(tiles)[folder % len(tiles)]
            elif family == "tone":
                texture = render_tone(p, keys[folder], xf)
            elif family == "halves":
                texture = render_halves(p, keys[folder], 224, 224)
            elif family == "hier":
                texture = render_hier(p, class_keys[sup[folder]], keys[folder], 224, 224, args.shared_weight, args.colour)
            else:
                texture = render(p, keys[folder], comps, 224, 224)
            prot8 = ((xf + texture * EPS).clamp(0, 1) * 255).round().byte()
            psnr = float(10 * torch.log10(1 / ((prot8.float() / 255 - xf) ** 2).mean()))
            prot_small = downsample(prot8, size, "pil")
            for defense in ["none", *args.defenses]:
                curve = train_victim(apply_defense(defense, prot_small), y[tr], test, y[te], 10, recipe, defense)
                peak = max(curve)
                label = name if defense == "none" else f"{name} + {defense}"
                alike = "– | –" if family in ("tiles", "ar", "arfix", "tone") else f"{float(s.max()):.2f} | {int((s > 0.5).sum()) // 2}"  # grating likeness only
                print(f"| {label} | {seed} | {psnr:.1f} | {alike} | {clean[seed]:.3f} | "
                      f"{peak:.3f} | {(clean[seed] - peak) / (clean[seed] - 0.1):.2f} | {' '.join(f'{a:.2f}' for a in curve)} |"
                      f" <!-- {time.perf_counter() - t0:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
