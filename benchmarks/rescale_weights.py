"""A weights file equal to another but for the gratings' frequency band (how v2 and v3 were made; candidate rows).

    python benchmarks/rescale_weights.py 12 24 runs/v2.safetensors --weights runs/v1.safetensors
    python benchmarks/rescale_weights.py 4 8 weights/ucprotect-conse-v3.safetensors --weights runs/v2.safetensors
    python benchmarks/rescale_weights.py 12 24 v2.safetensors      # v2's band again, from the shipped weights
    python benchmarks/rescale_weights.py 4 8 sine-4-8.safetensors --sharpness 1   # v3's band, a sine-like profile
    python benchmarks/rescale_weights.py 4 8 split.safetensors --luma-factor 3   # chroma at 4-8, grey at 12-24
    python benchmarks/rescale_weights.py 2 4 halves.safetensors --luma-factor 6 --split-layout halves
    python benchmarks/rescale_weights.py 2 4 hybrid.safetensors --luma-factor 6 --split-layout halves --split-min-px 4
    python benchmarks/rescale_weights.py 8 16 band816-small.safetensors --weights weights/ucprotect-conse-v3.safetensors \
        --split-min-px 6 --small-factor 0.5   # 8-16 cycles, but v3's 4-8 on photos under 96 px (as v4)

Every key keeps its texture's orientation, phase and colour signs and its place within the band (the
frequency logits are unchanged); only ``min_cycles``/``max_cycles`` change. A band that is the source's
times a factor (12-24 = 8-16 x 1.5) scales every frequency alike, and the texture likeness is scale-free,
so collections draw exactly the keys they draw with the source file: what differs is the band alone.
``--sharpness S`` also sets the wave's profile, tanh(S sin) scaled to peak 1 (8: ~square, the shipped; 1: ~sine);
key choice does not depend on it. ``--luma-factor F`` makes split textures: each key's wave in chrominance only at the
band, beside the same wave at F x its frequency in luminance only, at half amplitude each (key choice unchanged);
with ``--split-layout halves`` each at full amplitude instead, the key's own colour wave in the image's top half and
the grey wave in its bottom half (``--colour-rows R``: the colour wave on the top R of the rows instead of half), or
with ``--split-layout channels`` each at full amplitude over the whole photo in its own channels; ``--split-min-px P``
draws photos whose short side has under P pixels per period of the finest wave's top frequency (split: the grey wave;
one wave: the band's) as one colour wave over the whole photo at ``--small-factor`` x the band (default the source's; 2).
``--oblique LO HI`` and ``--cardinal SPREAD`` move every key's orientation into LO-HI degrees from the rows, or to
within SPREAD degrees of the nearer axis (both lost on resnet18-w16, 0.32 and 0.31 against v4's 0.54: RESULTS.md
session 27; key choice sees the new likeness, so keys change).
``--chroma-sharpness S`` keeps each key's colour but draws its chrominance in the profile tanh(S sin) (soft colour
edges) and its luminance in the square wave.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.generator import create_generator  # noqa: E402
from ucprotect.weights import load_weights, save_weights  # noqa: E402


def remap_orientations(generator, remap) -> None:
    """Give every wave the orientation ``remap`` makes of it folded with its mirror image (0..pi/2 from the rows;
    victims flip photos, so a and pi - a teach the same), on the same side of the vertical as before."""
    with torch.no_grad():
        a = generator.angle.remainder(math.pi)
        mapped = remap(torch.minimum(a, math.pi - a))
        generator.angle.copy_(torch.where(a <= math.pi / 2, mapped, math.pi - mapped))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("min_cycles", type=float)
    ap.add_argument("max_cycles", type=float)
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="source file (default: the shipped weights)")
    ap.add_argument("--sharpness", type=float, default=None, help="wave profile (default: the source's)")
    ap.add_argument("--luma-factor", type=float, default=None, help="split textures (default: the source's)")
    ap.add_argument("--chroma-sharpness", type=float, default=None,
                    help="the colour's chrominance in this softer profile, its luminance in --sharpness (default: the source's)")
    ap.add_argument("--split-layout", choices=["blend", "halves", "channels"], default=None,
                    help="with --luma-factor: the waves summed at half amplitude, each in one half of the image at full, "
                         "or each in its own channels at full (the band's red against blue, the fine one in green)")
    ap.add_argument("--colour-rows", type=float, default=None,
                    help="halves: the share of rows, from the top, that draw the colour wave (default: the source's; v4 0.5)")
    ap.add_argument("--split-min-px", type=float, default=None,
                    help="photos with fewer pixels a period of the finest wave draw the colour wave over the whole photo "
                         "at --small-factor x the band (default: the source's)")
    ap.add_argument("--small-factor", type=float, default=None,
                    help="with --split-min-px: the small photos' band as a multiple of the band (default: the source's)")
    ap.add_argument("--oblique", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                    help="map every wave's orientation, folded with its mirror image into 0-90 degrees from the rows, "
                         "linearly into LO-HI degrees (keeping its side of the vertical): photos hold less of their own "
                         "signal at oblique orientations (benchmarks/band_salience.py)")
    ap.add_argument("--cardinal", type=float, default=None, metavar="SPREAD",
                    help="the other way: every folded orientation moved into 0-SPREAD degrees of the nearer axis, "
                         "order kept (0-45 -> 0-SPREAD, 45-90 -> 90-SPREAD-90)")
    args = ap.parse_args()
    src = load_weights(args.weights)
    profile = {k: v for k, v in dict(sharpness=args.sharpness, luma_factor=args.luma_factor,
                                     chroma_sharpness=args.chroma_sharpness, split_layout=args.split_layout,
                                     split_min_px=args.split_min_px, small_factor=args.small_factor,
                                     colour_rows=args.colour_rows).items() if v is not None}  # else the source's
    generator = create_generator(replace(src.config, min_cycles=args.min_cycles, max_cycles=args.max_cycles, **profile))
    generator.load_state_dict(src.generator.state_dict())
    if args.oblique:
        lo, hi = (math.radians(v) for v in args.oblique)
        remap_orientations(generator, lambda folded: lo + (hi - lo) * folded / (math.pi / 2))
    if args.cardinal:
        squeeze = math.radians(args.cardinal) / (math.pi / 4)
        remap_orientations(generator, lambda folded: torch.where(
            folded < math.pi / 4, folded * squeeze, math.pi / 2 - (math.pi / 2 - folded) * squeeze))
    # save_weights writes format, version, generator config, backbone and vocabulary over the source's
    save_weights(args.out, generator, src.backbone, src.backbone_tensors, src.concept_names, src.coarse_keys, src.metadata)
    before, after = src.generator.texture_similarity(), generator.texture_similarity()
    cycles = generator.cycles().detach()
    small_px = generator.small_photo_px()  # shown, as it may be inherited: a one-wave file from v4 keeps v4's 4 and 2x
    small = (f"; photos under {small_px:g} px draw {generator.config.small_factor:g} x the band" if small_px
             else "; no small-photo form")
    print(f"{args.out}: {float(cycles.min()):.2f}-{float(cycles.max()):.2f} cycles, sharpness {generator.config.sharpness:g}; "
          f"largest change in texture likeness {float((before - after).abs().max()):.1e}{small}")


if __name__ == "__main__":
    main()
