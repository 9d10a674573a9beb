"""Periodic textures optimised to be learned sooner than gratings (min-min with fresh victims), and a proxy.

    python benchmarks/learned_tiles.py optimise --out tiles.pt --keys 10 --period 28 --restarts 20 --steps 60
    python benchmarks/learned_tiles.py speed --tiles tiles.pt --seeds 0 1 2     # also rates gratings:10

Why: on the victims so far a texture protects about as far as it is learned before the photos' content (session 27:
at 8/255 the peak is set in epochs 4-5, at 16/255 the texture is taken at once). Every full-amplitude grating has
the same power, so what is left to gain at the same budget is a pattern a fresh CNN picks up sooner. Error-minimising
noise (Huang et al. 2021) finds such patterns by letting the noise minimise the same loss as the network; here the
noise is a periodic tile (``period`` px at 224 px, tiled: shift-invariant up to the tile, so it survives crops), the
labels are random keys redrawn for every sample (the photo says nothing about its key, so nothing dataset-specific
can be learned: only the texture carries the key), and the network is re-initialised every ``--steps`` steps, so
the tiles are pulled toward what a *fresh* network learns first, not toward one network's features.
Photos: ``train/imagenet-1k-sample`` (one per ImageNet class; never eval/), centre square at 224 px; textures are
added at 224 px and downsampled to the victim's 64 px (bicubic, antialiased) inside the graph, as the thief's
loader does, then cropped and flipped as the victim's training does.

``speed`` is the proxy: for frozen textures, a fresh victim trains ``--steps`` steps on random keys (same photos)
and reports its key accuracy on 512 held-out photo/key pairs; rows for the tiles and for ten gratings drawn as
`families.py grating:10` draws them (8-16 cycles per short side).

Measured (RESULTS.md, session 28): tiles started from gratings and optimised this way score 0.78 / 0.78 against the
gratings' 0.69 / 0.72 on the small CNN they were optimised against (`families.py tiles:10 --tiles F`), but 0.56 /
0.54 against 0.65 / 0.64 on resnet18-w16: the gain does not carry over to a ResNet, so nothing ships from it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ucprotect import imageio  # noqa: E402
from ucprotect.transforms import down_up, gaussian_blur, grayscale  # noqa: E402
from ucprotect.verify import _augment  # noqa: E402
from ucprotect.victims import create_victim  # noqa: E402
from variants import CACHE, EPS  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "train" / "imagenet-1k-sample"


def load_sample(size: int = 224) -> torch.Tensor:
    """The 1,000 sample photos as N x 3 x size x size uint8 (cached in the temp folder)."""
    CACHE.mkdir(exist_ok=True)
    f = CACHE / f"imagenet-1k-sample_{size}.pt"
    if f.exists():
        return torch.load(f)
    paths = sorted(p for p in SAMPLE.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    x = torch.from_numpy(np.stack([imageio.load_square(p, size) for p in paths])).permute(0, 3, 1, 2).contiguous()
    torch.save(x, f)
    return x


def load_sample64() -> torch.Tensor:
    """The sample photos at the victims' 64 px (uint8), downsampled as `to_victim` downsamples textures."""
    x64 = F.interpolate(load_sample().float(), size=(64, 64), mode="bicubic", antialias=True, align_corners=False)
    return x64.round().clamp(0, 255).byte()


def tiled(tiles: torch.Tensor, size: int = 224) -> torch.Tensor:
    """K x 3 x P x P tiles in [-1, 1] repeated over size x size (K x 3 x size x size)."""
    p = tiles.shape[-1]
    reps = -(-size // p)
    return tiles.repeat(1, 1, reps, reps)[..., :size, :size]


def to_victim(texture224: torch.Tensor, size: int = 64) -> torch.Tensor:
    """The texture as the victim sees it: L-inf 8/255 at 224 px, downsampled (linear, so apart from the clamp of
    the photo it commutes with adding)."""
    return F.interpolate(texture224 * EPS, size=(size, size), mode="bicubic", antialias=True, align_corners=False)


def bounded(theta: torch.Tensor, dc: bool) -> torch.Tensor:
    """Tile values in [-1, 1] from free parameters. Without ``dc`` each tile's mean colour is removed (and the rest
    rescaled into [-1, 1]): left free, the tiles collapse onto a few constant colour casts (tiles_a, session 28),
    which are learned soon but cannot key more than eight groups and which colour jitter would remove."""
    t = torch.tanh(theta)
    if dc:
        return t
    t = t - t.mean((-2, -1), keepdim=True)
    return t / t.abs().amax((-3, -2, -1), keepdim=True).clamp(min=1.0)


def tile_gratings(n: int, period: int, g: torch.Generator) -> torch.Tensor:
    """``n`` square-wave gratings that fit the tile (whole cycles across it, 1-2 per tile: 8-16 per short side at
    period 28), random phase and luminance-bearing colour signs: a start from which fresh networks already learn."""
    from ucprotect.generator import LUMA_SIGNS

    vectors = [(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (1, 2), (2, 1), (1, -2), (2, -1)]
    r = torch.arange(period) / period
    out = []
    for k in range(n):
        m, v = vectors[k % len(vectors)]
        phase = float(torch.rand(1, generator=g)) * 2 * torch.pi
        wave = torch.sign(torch.sin(2 * torch.pi * (v * r[:, None] + m * r[None, :]) + phase))
        colour = torch.tensor(LUMA_SIGNS[int(torch.randint(3, (1,), generator=g))], dtype=torch.float32)
        colour = colour * (1 if float(torch.rand(1, generator=g)) < 0.5 else -1)
        out.append(wave[None] * colour[:, None, None])
    return torch.stack(out)


def grating_textures(n: int = 10, seed: int = 0) -> torch.Tensor:
    """``n`` gratings as families.py's ``grating:n`` draws them (224 px, values +-1)."""
    from families import draw_distinct, family_params, likeness, render

    p = family_params(seed, 2, (8, 16))
    keys = draw_distinct(n, likeness(p, 1), seed)
    return render(p, keys, 1, 224, 224)


DEFENCES = {"none": lambda x: x, "grayscale": grayscale, "blur": lambda x: gaussian_blur(x, 1.0),
             "downup": lambda x: down_up(x, 0.5)}  # the battery's differentiable defences, as `verify` applies them


def key_batch(x64: torch.Tensor, tex64: torch.Tensor, idx: torch.Tensor, g: torch.Generator, augment: bool = True,
              defence: str = "none"):
    """Photos ``idx`` each with a random key's texture (the key redrawn every time), through ``defence``."""
    keys = torch.randint(len(tex64), (len(idx),), generator=g)
    x = DEFENCES[defence]((x64[idx].float() / 255 + tex64[keys]).clamp(0, 1))
    return (_augment(x, g, False) if augment else x), keys


def speed(tex224: torch.Tensor, x64: torch.Tensor, steps: int, seed: int, victim: str) -> float:
    """Key accuracy of a fresh victim after ``steps`` SGD steps on random keys (held-out photos)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    tex64 = to_victim(tex224)
    train, test = x64[:-200], x64[-200:]
    model = create_victim(victim, len(tex224), 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    model.train()
    for _ in range(steps):
        xb, kb = key_batch(train, tex64, torch.randint(len(train), (64,), generator=g), g)
        loss = F.cross_entropy(model(xb), kb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for rep in range(3):
            xb, kb = key_batch(test, tex64, torch.arange(len(test)), g, augment=False)
            correct += int((model(xb).argmax(1) == kb).sum())
    return correct / (3 * len(test))


def optimise(args) -> None:
    x64 = load_sample64()[:-200]  # the last 200 stay out, for `speed`
    g = torch.Generator().manual_seed(args.seed)
    if args.init == "gratings":
        theta = (1.5 * tile_gratings(args.keys, args.period, g)).requires_grad_()
    else:
        theta = (torch.randn(args.keys, 3, args.period, args.period, generator=g) * 1.5).requires_grad_()
    tex_opt = torch.optim.Adam([theta], lr=args.lr)
    meta = {k: str(v) for k, v in vars(args).items()}
    torch.save({"tiles": bounded(theta, args.dc).detach(), "args": meta}, args.out)  # --restarts 0: the start alone
    t0 = time.perf_counter()
    for restart in range(args.restarts):
        torch.manual_seed(args.seed * 1000 + restart)
        model = create_victim(args.victim, args.keys, 64)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        model.train()
        defence = args.defences[restart % len(args.defences)]  # a thief keeps one defence for a whole training
        accs = []
        for _ in range(args.steps):
            tex64 = to_victim(tiled(bounded(theta, args.dc)))
            xb, kb = key_batch(x64, tex64, torch.randint(len(x64), (64,), generator=g), g, defence=defence)
            out = model(xb)
            loss = F.cross_entropy(out, kb)
            opt.zero_grad(set_to_none=True)
            tex_opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tex_opt.step()
            accs.append(float((out.argmax(1) == kb).float().mean()))
        tiles = bounded(theta, args.dc).detach()
        sat = float((tiles.abs() > 0.9).float().mean())
        print(f"restart {restart + 1:3d} ({defence}): key accuracy over its {args.steps} steps {np.mean(accs):.3f} "
              f"(last 10: {np.mean(accs[-10:]):.3f}); share of tile values beyond 0.9 of the budget {sat:.2f}; "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        torch.save({"tiles": tiles, "args": meta}, args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("optimise")
    o.add_argument("--out", type=Path, required=True)
    o.add_argument("--keys", type=int, default=10)
    o.add_argument("--period", type=int, default=28, help="tile side at 224 px (28: 8 tiles per short side)")
    o.add_argument("--restarts", type=int, default=20)
    o.add_argument("--steps", type=int, default=60, help="steps of each fresh network")
    o.add_argument("--lr", type=float, default=0.05, help="Adam's step on the tiles' pre-tanh values")
    o.add_argument("--victim", default="small-cnn")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--init", choices=["gratings", "noise"], default="gratings",
                   help="start from gratings that fit the tile (from noise, fresh networks stay at chance: tiles_b)")
    o.add_argument("--defences", nargs="+", default=["none"], choices=sorted(DEFENCES),
                   help="each fresh network trains through the next of these (JPEG is not differentiable: not here)")
    o.add_argument("--dc", action="store_true", help="let tiles keep a mean colour (session 28's tiles_a; see bounded())")
    s = sub.add_parser("speed")
    s.add_argument("--tiles", type=Path, nargs="*", default=[])
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--steps", type=int, default=60)
    s.add_argument("--victim", default="small-cnn")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.cmd == "optimise":
        return optimise(args)
    x64 = load_sample64()
    rows = [("grating:10 (8-16 cycles)", grating_textures())]
    rows += [(str(f), tiled(torch.load(f)["tiles"])) for f in args.tiles]
    print(f"| textures | victim | steps | key accuracy per seed ({' '.join(map(str, args.seeds))}) | mean |")
    print("|---|---|---|---|---|")
    for name, tex in rows:
        accs = [speed(tex, x64, args.steps, seed, args.victim) for seed in args.seeds]
        print(f"| {name} | {args.victim} | {args.steps} | {' '.join(f'{a:.3f}' for a in accs)} | {np.mean(accs):.3f} |", flush=True)


if __name__ == "__main__":
    main()
