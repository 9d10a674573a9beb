"""Proxy: how loud a grating is against the photos' own content at its frequency, orientation and colour (CPU, ~1 min).

    python benchmarks/band_salience.py                       # train/imagenette, 64 px (the victims' size)
    python benchmarks/band_salience.py --size 64 --images 2000

Every texture ucprotect draws at full amplitude has the same power (each pixel and channel moves by the budget), so
what can make one texture a sooner shortcut than another is how much of the photos' own signal shares its place in
the spectrum. This measures, on ``train/imagenette`` (never ``eval/``) resized as the victims see it (Pillow
bicubic to ``--size``), the photos' amplitude at a grating's frequency (cycles per short side), orientation and
colour direction, and prints it as a salience: the 8/255 grating's fundamental over that natural amplitude, (4/pi)
8/255 |s| against the root mean square of the photos' Fourier coefficient there (scaled to the same units), with
``s`` the grating's colour signs projected on their own direction. Orientations are folded with their mirror image
(victims flip photos left to right); a bin is the mean power over the 3 x 3 Fourier bins around the frequency.
Larger is louder; 2x louder is what twice the budget would give. It says nothing about defences, and as a predictor
of how soon a victim takes a texture it failed on both of its axes (RESULTS.md session 27: oblique keys, ~1.5x louder,
lost 0.22 on resnet18-w16; v2's 12-24 colour wave, ~10x louder than 2-4, was level with it): kept as a record.
"""
from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train" / "imagenette"
COLOURS = {  # sign patterns, up to a global sign; the first three are the shipped palette (generator.LUMA_SIGNS)
    "grey (1,1,1)": (1, 1, 1),
    "(1,1,-1)": (1, 1, -1),
    "(-1,1,1)": (-1, 1, 1),
    "magenta-green (1,-1,1)": (1, -1, 1),
}


def load(paths: list[Path], size: int) -> np.ndarray:
    """N x 3 x size x size floats in [0, 1], each photo resized as efficacy.py feeds victims (short side, centre)."""
    out = np.empty((len(paths), 3, size, size), np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("RGB").resize((size, size), Image.BICUBIC)
        out[i] = np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0
    return out


def natural_power(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per colour direction: mean |FFT|^2 over the photos (size x size), each photo's mean removed and a Hann window
    applied (without it the photo's edges, which the FFT wraps around, put a false cross of power on the axes)."""
    n = images.shape[-1]
    hann = np.hanning(n + 2)[1:-1].astype(np.float32)
    window = np.outer(hann, hann) / np.sqrt((np.outer(hann, hann) ** 2).mean())  # unit mean square: power is kept
    power = {}
    for name, signs in COLOURS.items():
        v = np.asarray(signs, np.float32) / np.linalg.norm(signs)
        x = np.einsum("nchw,c->nhw", images, v)
        x = x - x.mean(axis=(1, 2), keepdims=True)
        power[name] = (np.abs(np.fft.fft2(x * window)) ** 2).mean(0)
    return power


def bin_power(power: np.ndarray, cycles: float, angle_deg: float) -> float:
    """Mean power over the 3 x 3 bins around the frequency and around its left-right mirror."""
    n = power.shape[0]
    vals = []
    for a in (math.radians(angle_deg), math.pi - math.radians(angle_deg)):
        fy, fx = cycles * math.sin(a), cycles * math.cos(a)
        cy, cx = int(round(fy)), int(round(fx))
        vals += [power[(cy + dy) % n, (cx + dx) % n] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return float(np.mean(vals))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--size", type=int, default=64, help="the victims' image size")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--cycles", type=float, nargs="+", default=[2, 3, 4, 6, 8, 12, 16, 24])
    ap.add_argument("--angles", type=float, nargs="+", default=[0, 22.5, 45, 67.5, 90])
    args = ap.parse_args()
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    random.Random(0).shuffle(paths)
    images = load(paths[: args.images], args.size)
    power = natural_power(images)
    n = args.size
    print(f"{len(images)} photos of {args.data} at {n} px; salience of an 8/255 square-wave grating (fundamental "
          f"(4/pi) 8/255 |s| over the photos' RMS amplitude at its frequency; larger is louder)\n")
    for name, signs in COLOURS.items():
        grating = (4 / math.pi) * (8 / 255) * np.linalg.norm(signs) * n * n / 2  # its Fourier coefficient
        print(f"| {name}, cycles per side \\ angle (deg) | " + " | ".join(f"{a:g}" for a in args.angles) + " |")
        print("|---|" + "---|" * len(args.angles))
        for c in args.cycles:
            row = [grating / math.sqrt(bin_power(power[name], c, a)) for a in args.angles]
            print(f"| {c:g} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
        print()


if __name__ == "__main__":
    main()
