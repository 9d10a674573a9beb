"""Proxy: how much of a coloured grating's chrominance a thief's JPEG 75 leaves at the victim's size (seconds, CPU).

    python benchmarks/jpeg_chroma_retention.py                                # the 64 px victim
    python benchmarks/jpeg_chroma_retention.py --size 112 --cycles 8 12 16    # v5's band for a 112 px thief

A (1, 1, -1) square-wave grating at L-inf 8/255 on a noisy mid-grey square of --size px (default 64; noise sd 6, so
quantisation is dithered as on photos), averaged over six phases, through JPEG quality 75 with 4:2:0 and with 4:4:4 chroma. Printed
per frequency and angle: the JPEG'd signal's chrominance projected on the original's (1: all kept), and the same for
its luminance under 4:2:0. With 4:2:0 a chroma block spans 16 px, so a wave of c cycles on an S px image sits at DCT
frequency 16c/S of it, where chroma quantisation steps grow fast.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ucprotect import verify  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114])


def jpeg(a: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """The victim harness's JPEG defence (verify.jpeg) on one H x W x 3 uint8 array, as floats."""
    return verify.jpeg(torch.from_numpy(a).permute(2, 0, 1)[None], quality, subsampling)[0].permute(1, 2, 0).numpy().astype(np.float32)


def kept(before: np.ndarray, after: np.ndarray) -> float:
    return float((before * after).sum() / (before * before).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64, help="the thief's training size in px (the square's side)")
    ap.add_argument("--cycles", type=float, nargs="+", default=[2, 3, 4, 6, 8, 12], help="cycles per short side")
    args = ap.parse_args()
    size = args.size
    rng = np.random.default_rng(0)
    base = np.clip(128 + rng.normal(0, 6, (size, size, 3)), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    chroma = lambda d: d - (d @ LUMA)[..., None]
    print("| cycles per short side | angle (rad) | chrominance kept, 4:2:0 | 4:4:4 | luminance kept, 4:2:0 |")
    print("|---|---|---|---|---|")
    for cycles in args.cycles:
        for angle in (0.0, 0.6):
            rows: dict[str, list[float]] = {"420": [], "444": [], "luma": []}
            for phase in np.linspace(0, 2 * np.pi, 6, endpoint=False):
                wave = np.tanh(8 * np.sin(2 * np.pi * cycles * (np.cos(angle) * xx + np.sin(angle) * yy) / size + phase))
                protected = np.clip(np.round(base + 8 * wave[..., None] * np.array([1, 1, -1.0])), 0, 255).astype(np.uint8)
                clean = np.clip(np.round(base), 0, 255).astype(np.uint8)
                before = protected.astype(np.float32) - clean
                for name in ("420", "444"):
                    after = jpeg(protected, 75, name) - jpeg(clean, 75, name)
                    rows[name].append(kept(chroma(before), chroma(after)))
                    if name == "420":
                        rows["luma"].append(kept(before @ LUMA, after @ LUMA))
            print(f"| {cycles:g} | {angle:.1f} | {np.mean(rows['420']):.2f} | {np.mean(rows['444']):.2f} | {np.mean(rows['luma']):.2f} |")


if __name__ == "__main__":
    main()
