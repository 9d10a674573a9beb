"""Proxy: how much of a key's grating each defence of the battery keeps, per frequency band (seconds, CPU).

    python benchmarks/defence_retention.py

The victims of ``verify`` see 64 px copies and the defences run at that size (``verify.apply_defense``). Here
a grating of C cycles per side (square wave as the generator draws it, ``tanh(8 sin)``, or a pure sine) at
8/255 on mid-grey, in each colour-sign pattern of the shipped palette, at 8 orientations, goes through each
defence; printed is the part of it that is left: the defended signal projected on the original, over the
original's energy (1: kept whole; 0: erased). Blur and down-up are linear, so for them this is the band's
attenuation whatever the photo; JPEG depends a little on the content, so on grey it is an upper bound.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.verify import apply_defense  # noqa: E402

SIZE = 64
PALETTE = ((1, 1, 1), (1, 1, -1), (-1, 1, 1))  # the shipped keys' colour-sign patterns, up to sign


def grating(cycles: float, angle: float, sharpness: float | None) -> torch.Tensor:
    """SIZE x SIZE wave in [-1, 1]; ``sharpness`` None is a sine."""
    r = torch.arange(SIZE) + 0.5
    y, x = torch.meshgrid(r, r, indexing="ij")
    t = 2 * math.pi * cycles * (x * math.cos(angle) + y * math.sin(angle)) / SIZE + 0.3
    wave = torch.sin(t) if sharpness is None else torch.tanh(sharpness * torch.sin(t))
    return wave / wave.abs().max()


def kept(defense: str, wave: torch.Tensor, colour: tuple[int, int, int], amplitude: float = 8.0) -> float:
    signal = torch.stack([wave * c for c in colour]) * amplitude
    grey = torch.full((1, 3, SIZE, SIZE), 128.0)
    out = apply_defense(defense, (grey + signal).round().byte()).float() - apply_defense(defense, grey.byte()).float()
    return float((out[0] * signal).sum() / (signal * signal).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", nargs="*", type=float, default=[4, 6, 8, 10, 12, 16, 20, 24])
    ap.add_argument("--defenses", nargs="*", default=["blur:1.0", "downup:0.5", "jpeg:75", "grayscale"])
    args = ap.parse_args()
    angles = [math.pi * i / 8 for i in range(8)]
    print(f"share of a {SIZE} px grating kept (mean over 8 orientations; colours: {PALETTE})\n")
    print("| profile | cycles per side | period (px) | " + " | ".join(args.defenses) + " |")
    print("|---|---|---|" + "---|" * len(args.defenses))
    for profile, sharpness in (("square", 8.0), ("sine", None)):
        for cycles in args.cycles:
            cells = []
            for d in args.defenses:
                vals = [kept(d, grating(cycles, a, sharpness), c) for a in angles for c in PALETTE]
                per_colour = [sum(vals[i::len(PALETTE)]) / len(angles) for i in range(len(PALETTE))]
                cells.append(f"{sum(vals) / len(vals):.2f}" + ("" if d.startswith(("blur", "downup")) else
                                                              " (" + " / ".join(f"{v:.2f}" for v in per_colour) + ")"))
            print(f"| {profile} | {cycles:g} | {SIZE / cycles:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
