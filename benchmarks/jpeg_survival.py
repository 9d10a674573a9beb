"""Proxy: how much of a grating's signal survives a thief's JPEG 75, per colour-sign pattern (seconds, CPU).

    python benchmarks/jpeg_survival.py

For 40 photos of ``train/imagenette`` (never eval/), centre square at 224 px, each gets the shipped weights'
grating of a random key (its wave, repainted in each sign pattern in turn) at L-inf 8/255; protected and
clean copies go to 64 px (Pillow bicubic, as the victim sees them) and through JPEG quality 75. The signal is
protected minus clean, before and after JPEG; printed per pattern: the cosine between the two (1: the
pattern survives as it was) and how much luminance signal is left, as the JPEG'd signal's luminance projected
on the luminance a grey (1, 1, 1) grating has before JPEG (1: all of a grey grating's; what a grayscale or
JPEG'd victim can still see).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.imageio import centre_square  # noqa: E402
from ucprotect.weights import load_weights  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "train" / "imagenette"
PATTERNS = ((1, 1, 1), (1, 1, -1), (-1, 1, 1), (1, -1, 1))  # up to sign; the first three are the shipped palette
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def jpeg(a: np.ndarray, quality: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float32)


def to64(a: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((64, 64), Image.BICUBIC))


def main() -> None:
    generator = load_weights(None).generator
    photos = [np.asarray(centre_square(Image.open(p).convert("RGB"), 224), np.float32)
              for p in sorted(DATA.rglob("*.JPEG"))[::40][:40]]
    keys = torch.randint(0, generator.config.num_keys, (len(photos),), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wave = generator.render(keys, 224, 224)[:, 1]  # the green channel carries +-1 in every shipped pattern
        wave = (wave / wave.abs().amax((-1, -2), keepdim=True)).numpy()
    print("| colour signs | luminance Y | cosine of signal after JPEG 75 with before | luminance left, of a grey grating's |")
    print("|---|---|---|---|")
    for pattern in PATTERNS:
        cos, kept = [], []
        for x, w in zip(photos, wave):
            protected = np.clip(np.round(x + 8 * w[..., None] * np.array(pattern, np.float32)), 0, 255).astype(np.uint8)
            a, b = to64(protected), to64(x.astype(np.uint8))
            before = a.astype(np.float32) - b
            after = jpeg(a) - jpeg(b)
            cos.append(float((before * after).sum() / (np.linalg.norm(before) * np.linalg.norm(after) + 1e-9)))
            grey = to64(np.clip(np.round(x + 8 * w[..., None]), 0, 255).astype(np.uint8)).astype(np.float32) - b
            grey_y = grey @ LUMA
            kept.append(float(((after @ LUMA) * grey_y).sum() / ((grey_y * grey_y).sum() + 1e-9)))
        print(f"| {pattern} | {float(np.dot(pattern, LUMA)):.2f} | {np.mean(cos):.2f} | {np.mean(kept):.2f} |")


if __name__ == "__main__":
    main()
