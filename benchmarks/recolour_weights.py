"""A weights file equal to another but for the gratings' colour signs (candidate rows for JPEG and grayscale).

    python benchmarks/recolour_weights.py luma2 /tmp/luma2.safetensors     # from the shipped weights
    python benchmarks/recolour_weights.py gray /tmp/gray.safetensors

JPEG keeps luminance (Y = 0.299 R + 0.587 G + 0.114 B) at full resolution and subsamples and coarsely
quantises colour, so what survives of a grating is its colour signs' Y. The shipped palette draws each key
from three sign patterns, (1, 1, 1) (Y 1.0), (1, 1, -1) (Y 0.77) and (-1, 1, 1) (Y 0.40), each up to sign.
``luma2`` repaints the third's keys (-1, 1, 1) -> (1, 1, 1) (same overall sign), so every key keeps at least
0.77 of a grey grating's Y and two colour families remain; ``gray`` repaints every key (1, 1, 1): no colour at
all. Frequencies, orientations and phases are untouched. The coarse concept keys (single photos) are picked
again as ``ucprotect train`` picks them (k-means of the concept embeddings, ``coarse_groups`` from the
source's training config, each group's representative the least alike by texture among its 8 nearest), over
the repainted textures; folder and cluster keys are chosen at protect time from the texture likeness, which
changes with the colours.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.concepts import ConceptSet  # noqa: E402
from ucprotect.generator import create_generator  # noqa: E402
from ucprotect.weights import load_weights, save_weights  # noqa: E402

WEAK_LUMA = torch.tensor([-1.0, 1.0, 1.0])  # the shipped palette's pattern with the least luminance (Y 0.40)


def recolour(colour: torch.Tensor, palette: str) -> torch.Tensor:
    """Colour logits (K x J x 3) repainted: ``luma2`` turns (-1, 1, 1) keys grey, ``gray`` every key."""
    luma = colour @ torch.tensor([0.299, 0.587, 0.114])
    sign = torch.where(luma >= 0, 1.0, -1.0)[..., None]  # each key keeps its overall sign (its phase)
    grey = 3.0 * sign * torch.ones_like(colour)  # logit 3, as the generator's initialisation
    if palette == "gray":
        return grey
    weak = (torch.sign(colour) * sign == WEAK_LUMA).all(-1, keepdim=True)
    return torch.where(weak, grey, colour)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("palette", choices=["luma2", "gray"])
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", type=Path, default=None, help="source file (default: the shipped weights)")
    args = ap.parse_args()
    src = load_weights(args.weights)
    state = src.generator.state_dict()
    state["colour"] = recolour(state["colour"], args.palette)
    generator = create_generator(src.config)
    generator.load_state_dict(state)
    train = src.metadata.get("train_config") or {}  # parsed by load_weights
    concepts = ConceptSet(src.concept_names, generator.key_embeddings.detach().float())
    coarse = concepts.coarse_groups(int(train.get("coarse_groups", 64)), seed=int(train.get("seed", 0)),
                                    texture_similarity=generator.texture_similarity())
    save_weights(args.out, generator, src.backbone, src.backbone_tensors, src.concept_names, coarse, src.metadata)
    patterns, counts = torch.unique(torch.sign(state["colour"]).reshape(-1, 3) * torch.sign(state["colour"][..., 1]).reshape(-1, 1),
                                    dim=0, return_counts=True)
    print(f"{args.out}: colour patterns (up to sign) " + ", ".join(f"{tuple(int(v) for v in p)} x {int(c)}" for p, c in zip(patterns, counts))
          + f"; coarse keys: {len(set(coarse.tolist()))} representatives, {int((coarse != src.coarse_keys).sum())} of "
          f"{len(coarse)} concepts map to another key than the source's")


if __name__ == "__main__":
    main()
