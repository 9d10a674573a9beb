"""A candidate weights file whose keys are two-scale plaids: each key's grating plus a coarse wave.

    python benchmarks/twoscale_weights.py /tmp/twoscale.safetensors                 # from the shipped weights
    python benchmarks/twoscale_weights.py OUT --coarse-factor 0.5 --weights SRC

Why: a thief's blur or down-up resize at victim size erases v2's fine gratings (ResNet-18, RESULTS.md session
11); in memory a plaid of a fine wave and one at half the band's frequency protected more undefended and under
blur (`benchmarks/families.py twoscale:10 --cycles 12 24 --defenses ...`). Each key keeps its grating (now
wave 1: frequency, orientation, phase, colours) and gains wave 0 (a seeded random frequency in the band x
``coarse_factor``, orientation and phase); the texture is the square wave of the two sines' sum in the key's
colours, still drawn by table lookup. Coarse concept keys (single photos) are the source's.
Held out (small CNN, imagenette) it lost: 0.59 undefended and 0.08 under JPEG 75, against v2's 0.69 and 0.42
(RESULTS.md, session 11); the script stays so that row can be reproduced.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.generator import create_generator  # noqa: E402
from ucprotect.weights import load_weights, save_weights  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="source file (default: the shipped weights)")
    ap.add_argument("--coarse-factor", type=float, default=0.5)
    args = ap.parse_args()
    src = load_weights(args.weights)
    if src.config.components != 1:
        raise SystemExit(f"{args.weights}: needs one grating per key, has {src.config.components}")
    generator = create_generator(replace(src.config, components=2, coarse_factor=args.coarse_factor))
    with torch.no_grad():  # wave 1 := the source's grating; wave 0 keeps its seeded draw; colours: the key's
        for name in ("freq", "angle", "phase"):
            getattr(generator, name)[:, 1] = getattr(src.generator, name)[:, 0]
        generator.colour[:] = src.generator.colour[:, :1]
        generator.key_embeddings.copy_(src.generator.key_embeddings)
    save_weights(args.out, generator, src.backbone, src.backbone_tensors, src.concept_names, src.coarse_keys, src.metadata)
    cycles = generator.cycles().detach()
    print(f"{args.out}: wave 0 {float(cycles[:, 0].min()):.2f}-{float(cycles[:, 0].max()):.2f} cycles, "
          f"wave 1 {float(cycles[:, 1].min()):.2f}-{float(cycles[:, 1].max()):.2f}")


if __name__ == "__main__":
    main()
