"""The README's sample strip: original, protected and difference x8 of a 240 x 240 crop at 1:1.

    python benchmarks/readme_sample.py [--weights W] [--out examples/protected-sample.png]

Protects ``examples/photos`` with the default settings (what the README's quick-start command writes,
JPEG quality 95) into a temporary folder and crops ``scikit-image/chelsea.jpg`` at (120, 20).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect import Protector, protect_folder  # noqa: E402

PHOTO = Path("scikit-image/chelsea.jpg")
BOX = (120, 20, 360, 260)  # left, top, right, bottom: the eyes, fur and a smooth patch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "protected-sample.png")
    args = ap.parse_args()
    src = ROOT / "examples" / "photos"
    with tempfile.TemporaryDirectory() as tmp:
        protect_folder(src, Path(tmp), Protector.from_file(args.weights, device="cpu"))
        original = np.asarray(Image.open(src / PHOTO).convert("RGB").crop(BOX), dtype=np.int16)
        protected = np.asarray(Image.open(Path(tmp) / PHOTO).convert("RGB").crop(BOX), dtype=np.int16)
    difference = np.clip(128 + 8 * (protected - original), 0, 255)
    strip = np.concatenate([original, protected, difference], axis=1).astype(np.uint8)
    Image.fromarray(strip).save(args.out, optimize=True)
    print(f"{args.out}: L-inf {int(np.abs(protected - original).max())} (after JPEG 95)")


if __name__ == "__main__":
    main()
