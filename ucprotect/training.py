"""Training the universal generator on any folder of images (labels, if any, are ignored).

Steps: embed every training image once at the backbone's resolution (cached), build the generator
with the concept vocabulary as its keys, then optimise the chosen objective. Checkpoints hold model and
optimiser state; every step draws its randomness from a generator seeded by (seed, step, rank), so a
resumed run repeats the exact steps an uninterrupted one would have taken. ``export`` writes the weights file.

Multi-GPU: launched by ``torchrun --nproc_per_node N -m ucprotect train ...``, each process trains on its
own GPU through DistributedDataParallel (gradients averaged across processes; every process draws a
different batch); rank 0 alone writes checkpoints and the weights file. On CUDA, steps run under bf16
autocast with channels-last images.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from . import imageio
from .backbones import create_backbone
from .budget import check_epsilon_255, epsilon_from_255
from .concepts import ConceptSet
from .errors import ConfigError, DataError, UcprotectError, require_at_least
from .generator import GeneratorConfig, create_generator
from .objectives import Batch, create_objective
from .weights import save_weights


# checkpoints written before the band was a setting used the generator's then default, 8-16 cycles
PRE_V2_BAND = {"min_cycles": 8.0, "max_cycles": 16.0}


@dataclass
class TrainConfig:
    """Everything that defines a training run (checked on --resume, stored in the weights file)."""

    backbone: str = "conse"
    arch: str = "concept-texture"
    objective: str = "shortcut"
    steps: int = 300
    batch_size: int = 64
    lr: float = 0.01
    epsilon: float = 8.0  # 0-255 units
    image_size: int = 96  # training resolution of the photos (embeddings are still taken at 224)
    coarse_groups: int = 64  # concept groups single photos are keyed by
    min_cycles: float = GeneratorConfig.min_cycles  # concept-texture: the gratings' band, cycles per short side
    max_cycles: float = GeneratorConfig.max_cycles
    nearest_k: int = 5  # paper objective
    seed: int = 0
    max_images: int | None = None
    checkpoint_every: int = 100

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Refuse settings no run can use, before the models are built."""
        require_at_least(("--steps", self.steps, 0), ("--batch-size", self.batch_size, 1), ("--image-size", self.image_size, 16),
                         ("--coarse-groups", self.coarse_groups, 1), ("--checkpoint-every", self.checkpoint_every, 0),
                         ("--max-images", self.max_images, 1))
        if not self.lr > 0:
            raise ConfigError(f"--lr {self.lr}: must be above 0")
        check_epsilon_255(self.epsilon)
        if not 0 < self.min_cycles <= self.max_cycles:
            raise ConfigError(f"--min-cycles {self.min_cycles:g} / --max-cycles {self.max_cycles:g}: need 0 < min <= max")

    def identity(self) -> dict:
        """The settings a resumed run must share with the checkpoint (not steps/checkpointing)."""
        d = self.to_dict()
        for k in ("steps", "checkpoint_every"):
            d.pop(k)
        return d


def load_training_images(data_dir: Path, size: int, max_images: int | None, seed: int) -> tuple[list[Path], torch.Tensor]:
    """All readable images under ``data_dir`` as a uint8 tensor N x 3 x size x size (centre squares)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: not a folder; pass a folder of images (sub-folders are searched)")
    paths, _ = imageio.find_images(data_dir)
    if max_images and len(paths) > max_images:
        rng = np.random.default_rng(seed)
        paths = sorted(rng.choice(np.array(paths, dtype=object), max_images, replace=False).tolist())
    kept, arrays = [], []
    for p in paths:
        try:
            arrays.append(imageio.load_square(p, size))
        except UcprotectError:
            continue
        kept.append(p)
    if len(kept) < 4:
        raise DataError(f"{data_dir}: found {len(kept)} readable images; training needs at least 4")
    return kept, torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def embed_paths(backbone, paths: list[Path], batch_size: int = 32, on_progress: Callable[[int], None] | None = None) -> torch.Tensor:
    size = backbone.image_size
    out = []
    for i in range(0, len(paths), batch_size):
        batch = [torch.from_numpy(imageio.load_square(p, size)).permute(2, 0, 1) for p in paths[i : i + batch_size]]
        x = torch.stack(batch).float() / 255
        out.append(torch.nn.functional.normalize(backbone.encode_image(x) + backbone.encode_image(x.flip(-1)), dim=-1))
        if on_progress:
            on_progress(len(batch))
    return torch.cat(out)


def build_generator(backbone, config: TrainConfig, concepts: ConceptSet, **overrides):
    gcfg = GeneratorConfig(arch=config.arch, embed_dim=concepts.embeddings.shape[1], num_keys=len(concepts.names),
                           min_cycles=config.min_cycles, max_cycles=config.max_cycles, seed=config.seed, **overrides)
    generator = create_generator(gcfg)
    generator.key_embeddings.copy_(concepts.embeddings)
    return generator


class _LossModule(torch.nn.Module):
    """Generator + objective as one module, so DistributedDataParallel can wrap the whole step."""

    def __init__(self, generator, objective):
        super().__init__()
        self.generator = generator
        self.objective = objective

    def forward(self, batch: Batch, epsilon: float):
        return self.objective.loss(self.generator, batch, epsilon)


def distributed_setup(device: str) -> tuple[int, int, str]:
    """(rank, world size, device) — starts the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
        return rank, world, f"cuda:{local}"
    return rank, world, "cpu"


class Trainer:
    """Owns the models, optimiser and data of one run; ``run`` trains, ``export`` writes weights."""

    def __init__(self, data_dir: Path, out_dir: Path, config: TrainConfig, device: str = "cpu",
                 concept_names: list[str] | None = None, log: Callable[[str], None] | None = None):
        from .engine import resolve_device

        config.check()
        self.config = config
        self.data_dir = Path(data_dir)
        self.out_dir = Path(out_dir)
        self.rank, self.world, device = distributed_setup(device)
        self.device = resolve_device(device)
        self.cuda = self.device.type == "cuda"
        self.log = log or (lambda s: None)
        torch.manual_seed(config.seed)
        self.backbone = create_backbone(config.backbone).to(self.device).eval()
        self.concepts = ConceptSet.from_backbone(self.backbone, concept_names)
        self.generator = build_generator(self.backbone, config, self.concepts).to(self.device)
        texture_sim = self.generator.texture_similarity()
        self.coarse_keys = self.concepts.coarse_groups(config.coarse_groups, seed=config.seed,
                                                       texture_similarity=None if texture_sim is None else texture_sim.cpu())
        self.objective = create_objective(config.objective, backbone=self.backbone,
                                          concept_embeddings=self.concepts.embeddings.to(self.device),
                                          nearest_k=config.nearest_k).to(self.device)
        self.step_module: torch.nn.Module = _LossModule(self.generator, self.objective)
        if self.cuda:
            self.step_module = self.step_module.to(memory_format=torch.channels_last)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.step_module = DistributedDataParallel(self.step_module, device_ids=[self.device.index] if self.cuda else None,
                                                       find_unused_parameters=True)
        params = list(self.generator.parameters()) + list(self.objective.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.step = 0
        self.history: list[dict] = []
        self.seconds = 0.0

    def prepare_data(self, on_progress: Callable[[int], None] | None = None) -> int:
        cfg = self.config
        self.paths, self.images = load_training_images(self.data_dir, cfg.image_size, cfg.max_images, cfg.seed)
        if not self.objective.needs_embeddings:
            self.embeddings = torch.zeros(len(self.paths), self.concepts.embeddings.shape[1])
            return len(self.paths)
        cache = self.out_dir / "embeddings.pt"
        key = {"paths": [str(p) for p in self.paths], "backbone": cfg.backbone}
        if cache.exists():
            saved = torch.load(cache, weights_only=False)
            if saved.get("key") == key:
                self.embeddings = saved["embeddings"]
                return len(self.paths)
        self.embeddings = embed_paths(self.backbone, self.paths, on_progress=on_progress).cpu()
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp")
            torch.save({"key": key, "embeddings": self.embeddings}, tmp)
            tmp.replace(cache)
        return len(self.paths)

    def batch(self, step: int) -> Batch:
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step + self.rank * 7_919_000_003)
        idx = torch.randint(len(self.images), (self.config.batch_size,), generator=g)
        images = self.images[idx].float().div(255).to(self.device)
        if self.cuda:
            images = images.contiguous(memory_format=torch.channels_last)
        if torch.rand(1, generator=g).item() < 0.5:
            images = images.flip(-1)
        return Batch(images=images, embeddings=self.embeddings[idx].to(self.device), generator=g)

    def train_step(self) -> dict:
        self.generator.train()
        self.objective.train()
        batch = self.batch(self.step)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            loss, stats = self.step_module(batch, epsilon_from_255(self.config.epsilon))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        row = {"step": self.step, "loss": float(loss.detach()), **stats}
        self.history.append(row)
        return row

    def run(self, on_step: Callable[[dict], None] | None = None) -> None:
        t0 = time.perf_counter()
        while self.step < self.config.steps:
            row = self.train_step()
            if on_step:
                on_step(row)
            if self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self.save_checkpoint()
        self.seconds += time.perf_counter() - t0
        self.save_checkpoint()

    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self, path: Path | None = None) -> Path:
        path = Path(path or self.checkpoint_path())
        if self.rank != 0:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"config": self.config.to_dict(), "step": self.step, "generator": self.generator.state_dict(),
                 "objective": self.objective.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "history": self.history, "seconds": self.seconds}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    def load_checkpoint(self, path: Path) -> None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: no checkpoint to resume from; run without --resume to start, or pass the --out "
                              "folder of the run to continue")
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
            known = {k: v for k, v in state["config"].items() if k in {f.name for f in fields(TrainConfig)}}
            saved = TrainConfig(**{**PRE_V2_BAND, **known})
        except Exception as e:
            raise ConfigError(f"{path}: not a ucprotect training checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        if saved.identity() != self.config.identity():
            diff = {k: (v, self.config.identity()[k]) for k, v in saved.identity().items() if self.config.identity()[k] != v}
            raise ConfigError(f"{path}: checkpoint was made with other settings {diff} (checkpoint, now); "
                              "use the same options or start a new --out folder")
        self.generator.load_state_dict(state["generator"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.history = state["history"]
        self.seconds = state.get("seconds", 0.0)

    def export(self, path: Path, extra_metadata: dict | None = None) -> Path:
        meta = {"epsilon": self.config.epsilon, "objective": self.config.objective, "train_config": self.config.to_dict(),
                "train_data": str(self.data_dir), "train_images": len(getattr(self, "paths", [])), "train_steps": self.step,
                "train_seconds": round(self.seconds, 1), "train_machine": f"{platform.machine()} {os.cpu_count()} cpu, {self.device} x{self.world}"}
        meta.update(extra_metadata or {})
        if self.rank != 0:
            return Path(path)
        self.generator.eval()
        return save_weights(path, self.generator.cpu(), self.backbone.spec, self.backbone.extra_tensors(),
                            self.concepts.names, self.coarse_keys, meta)
