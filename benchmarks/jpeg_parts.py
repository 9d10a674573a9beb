"""Which part of a thief's JPEG takes protection away: its luminance or its chrominance (victim runs).

    python benchmarks/jpeg_parts.py --datasets ../shared/data/eval/imagenette --weights weights/ucprotect-conse-v3.safetensors \
        --group-by folder --labels folders --full --bf16 --device cpu --defenses jpegchroma:75 jpegluma:75 jpeg:75:444 --seed 1

`benchmarks/efficacy.py` (same flags, same table) with two diagnostic defences added, each half of a JPEG round trip
at the victim's size: ``jpegluma:Q`` keeps the JPEG'd image's luminance (Y) and the original's chrominance (Cb, Cr,
full resolution); ``jpegchroma:Q`` the original's luminance and the JPEG'd chrominance (4:2:0, quantised). Pillow's
own YCbCr conversion is the one its JPEG codec uses; the two halves add up to the JPEG round trip only roughly
(8-bit YCbCr and RGB clipping: on 64 px photos they differ from it by ~2.5 of 255 on average, JPEG 75 itself by ~5.5).
``jpeg:Q:444`` (a `verify` defence) is JPEG without chroma subsampling.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import efficacy  # noqa: E402
from ucprotect.verify import register_defense  # noqa: E402


def _jpeg_half(images: torch.Tensor, arg: str, keep_jpeg_band: int | slice) -> torch.Tensor:
    """JPEG round trip, then put the JPEG'd image's YCbCr bands ``keep_jpeg_band`` back into the original's."""
    quality = int(arg or 75)
    out = []
    for img in images:
        original = Image.fromarray(img.permute(1, 2, 0).numpy())
        buf = io.BytesIO()
        original.save(buf, format="JPEG", quality=quality)
        mixed = np.array(original.convert("YCbCr"))
        mixed[..., keep_jpeg_band] = np.array(Image.open(buf).convert("YCbCr"))[..., keep_jpeg_band]
        out.append(torch.from_numpy(np.array(Image.fromarray(mixed, "YCbCr").convert("RGB"))).permute(2, 0, 1))
    return torch.stack(out) if out else images


register_defense("jpegluma", lambda images, arg: _jpeg_half(images, arg, 0))
register_defense("jpegchroma", lambda images, arg: _jpeg_half(images, arg, slice(1, 3)))

if __name__ == "__main__":
    efficacy.main()
