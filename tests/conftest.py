"""Shared fixtures: a small generator made by the test session (not the shipped weights)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS = SHARED / "photos"


def need_shared():
    if not PHOTOS.exists():
        pytest.skip(f"shared data not found at {SHARED}")


@pytest.fixture(scope="session")
def train_images(tmp_path_factory) -> Path:
    """A handful of generated training images in two folders."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"c{c}").mkdir()
        for i in range(4):
            arr = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
            arr[..., c] = 200
            Image.fromarray(arr).save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def trainer_factory(train_images, tmp_path_factory):
    from ucprotect.training import TrainConfig, Trainer

    def make(out=None, **kw):
        cfg = TrainConfig(**{"steps": 2, "batch_size": 8, "image_size": 48, "coarse_groups": 16, "checkpoint_every": 0, **kw})
        tr = Trainer(train_images, out or tmp_path_factory.mktemp("run"), cfg, device="cpu")
        tr.prepare_data()
        return tr

    return make


@pytest.fixture(scope="session")
def weights_file(trainer_factory, tmp_path_factory) -> Path:
    tr = trainer_factory()
    tr.run()
    return tr.export(tmp_path_factory.mktemp("w") / "test.safetensors")


@pytest.fixture(scope="session")
def protector(weights_file):
    from ucprotect import Protector

    return Protector.from_file(weights_file, device="cpu")
