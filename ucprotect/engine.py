"""The protect engine: a pretrained generator applied to users' photos at native resolution.

Two passes over a collection. Pass 1 decodes small thumbnails (fast JPEG draft decoding) and embeds
them with the backbone in batches; grouping then gives every photo its concept key. Pass 2 decodes each
photo fully, renders its perturbation at the photo's own size, bounds it (``apply_budget_pixels``), and writes
it atomically. Decoding and encoding run on worker threads while the main thread does model work.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image

from . import imageio
from .backbones import create_backbone
from .budget import apply_budget_lookup, apply_budget_pixels, check_epsilon_255, epsilon_from_255
from .errors import ConfigError, ImageError, UcprotectError, require_at_least
from .generator import PeriodicTexture, StackedTextures
from .grouping import KEY_CANDIDATES, assign_keys, folder_sample, resolve_mode
from .keyfile import KEYS_FILE_NAME, KeyRecord, OtherWeightsKeysError
from .metrics import difference_stats, psnr_from_stats, ssim, ssim_luma, ssim_of_luma
from .weights import WeightsBundle, generator_fingerprint, legacy_fingerprints, load_weights, shipped_weights_with_fingerprint

MIN_SIDE = 16  # smaller images carry too few pixels for a pattern (and for a thief)
# On CPU the backbone runs 4 images at a time whatever --batch-size says: small batches stay in cache
# (EfficientNet-Lite0 on 2 cores: 16.5 ms an image at 4, 20.9 at 16, medians of 6 runs).
CPU_MICRO_BATCH = 4


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; asking for a device that is absent is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available here; use --device cpu (or auto)")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple MPS is not available here; use --device cpu (or auto)")
    if device not in ("cpu", "cuda", "mps") and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or mps")
    return torch.device(device)


def default_workers() -> int:
    """Worker threads: one per core this process may use (cgroup/affinity aware), at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(8, cores))


def to_tensor(rgb8: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xHxW float in [0, 1]."""
    return torch.from_numpy(np.array(rgb8, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255.0)


class Protector:
    """A loaded generator and its backbone, ready to protect images.

    >>> protector = Protector.from_file()            # the shipped weights
    >>> safe = protector.protect(Image.open("cat.jpg"))
    """

    def __init__(self, bundle: WeightsBundle, device: str = "auto", epsilon: float = 8.0, tta: bool = True):
        check_epsilon_255(epsilon)
        self.bundle = bundle
        self.device = resolve_device(device)
        self.epsilon = epsilon_from_255(epsilon)
        self.epsilon_255 = float(epsilon)
        self.tta = tta
        generator = bundle.generator.eval()
        # Textures are drawn per photo on CPU worker threads, from a CPU copy: reading a GPU generator's
        # parameters there waits on the device (and on the embedding batches queued on it) for every photo.
        # Key likeness and fingerprints come from it too, so keys do not depend on the device's rounding.
        self.cpu_generator = generator if self.device.type == "cpu" else copy.deepcopy(generator)
        self.generator = generator.to(self.device)
        self.backbone = create_backbone(bundle.backbone, extra=bundle.backbone_tensors).to(self.device).eval()
        self.half = self.device.type == "cuda"

    @classmethod
    def from_file(cls, weights: str | Path | None = None, device: str = "auto", **kwargs) -> "Protector":
        return cls(load_weights(weights), device=device, **kwargs)

    @property
    def weights_id(self) -> str:
        """The generator's fingerprint (``weights.generator_fingerprint``), recorded in keys files."""
        if not hasattr(self, "_weights_id"):
            self._weights_id = generator_fingerprint(self.cpu_generator)
        return self._weights_id

    @property
    def legacy_weights_ids(self) -> tuple[str, ...]:
        """Fingerprints that earlier versions recorded for these textures (``weights.legacy_fingerprints``)."""
        return legacy_fingerprints(self.cpu_generator)

    @property
    def texture_similarity(self) -> torch.Tensor | None:
        """K x K likeness of the keys' textures, if the generator can tell (used to keep groups apart)."""
        if not hasattr(self, "_texture_similarity"):
            self._texture_similarity = self.cpu_generator.texture_similarity()
        return self._texture_similarity

    @property
    def key_embeddings(self) -> torch.Tensor:
        return self.cpu_generator.key_embeddings

    @torch.no_grad()
    def embed(self, thumbnails: list[Image.Image], tta: bool | None = None) -> torch.Tensor:
        """Concept embeddings (N x D, CPU) of RGB thumbnails; with TTA (default: the Protector's setting),
        averaged with the mirror image."""
        tta = self.tta if tta is None else tta
        size = self.backbone.image_size
        batch = torch.cat([to_tensor(np.asarray(imageio.centre_square(t, size))) for t in thumbnails]).to(self.device)
        step = CPU_MICRO_BATCH if self.device.type == "cpu" else len(batch)
        out = []
        for chunk in batch.split(step):
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.half):
                emb = self.backbone.encode_image(chunk)
                if tta:
                    emb = emb + self.backbone.encode_image(chunk.flip(-1))
            out.append(emb.float())
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).cpu()

    @torch.no_grad()
    def perturbation(self, rgb: torch.Tensor, key: int, shared: int = -1) -> torch.Tensor:
        """Bounded perturbation (1 x 3 x H x W, in [-epsilon, epsilon]) for an RGB image tensor in [0, 1];
        ``shared`` >= 0 makes it the two-level texture of ``key`` and that shared key."""
        cond = self.generator.key_embeddings[key : key + 1]
        kwargs = {"keys": torch.tensor([key], device=self.device)} if self.generator.draws_keys else {}
        if shared >= 0:
            kwargs["shared"] = torch.tensor([shared], device=self.device)
        delta = self.generator(rgb.to(self.device), cond, **kwargs)
        delta = delta.float().mul_(self.epsilon)
        return delta.clamp_(-self.epsilon, self.epsilon).cpu()

    def perturb_pixels(self, photo: imageio.Photo, key: int, shared: int = -1) -> np.ndarray:
        """The photo's native pixels with the perturbation added, in its own colour model and bit depth."""
        w, h = photo.size
        texture = self.cpu_generator.periodic_form(key, h, w, shared=shared)
        if isinstance(texture, StackedTextures):  # a lookup texture per band of rows, written in place
            out = np.empty_like(photo.pixels)
            for start, part in zip(texture.starts, texture.parts):
                rows = slice(start, start + len(part.y_phase))
                self._perturb_lookup(photo.pixels[rows], part, photo, out=out[rows])
            return out
        if texture is not None:
            return self._perturb_lookup(photo.pixels, texture, photo)
        if self.generator.uses_pixels:
            rgb = to_tensor(photo.rgb8())
        else:  # the texture depends on the image size only: skip converting 3 x H x W pixels to floats
            rgb = torch.zeros(1, 1, 1, 1).expand(1, 3, h, w)
        delta = _for_colour_model(self.perturbation(rgb, key, shared)[0], photo.colour)
        return apply_budget_pixels(photo.pixels, delta, self.epsilon, photo.max_value)

    def _perturb_lookup(self, pixels: np.ndarray, texture: PeriodicTexture, photo: imageio.Photo,
                        out: np.ndarray | None = None) -> np.ndarray:
        """A grating: round a small table once (in the photo's colour model), then one lookup per pixel."""
        table = _for_colour_model(texture.table.T[..., None] * self.epsilon, photo.colour)[..., 0].T
        return apply_budget_lookup(pixels, replace(texture, table=table), self.epsilon, photo.max_value, out=out)

    def protect(self, image: Image.Image, key: int | None = None, shared: int = -1) -> Image.Image:
        """Protect one Pillow image (keyed by its own coarse concept group unless ``key`` is given; ``shared``
        as in :meth:`perturbation`, e.g. a folder's keys from the keys file)."""
        rgb = image.convert("RGB")
        if key is None:
            emb = self.embed([imageio.resize_short_side(rgb, self.backbone.image_size)])
            key = int(self.bundle.coarse_keys[(emb @ self.key_embeddings.T).argmax(1)][0])
        photo = imageio.Photo(path=Path("<memory>"), format="PNG", colour="rgb", pixels=np.asarray(rgb))
        result = Image.fromarray(self.perturb_pixels(photo, key, shared), "RGB")  # the very pixels `protect` writes
        if image.mode in ("RGBA", "LA"):
            result.putalpha(image.getchannel("A"))
        return result


def _for_colour_model(delta: torch.Tensor, colour: str) -> torch.Tensor:
    """An RGB perturbation (3 x H x W) as the photo's own channels see it: gray takes its luminance at
    the full budget (a gray photo can carry no colour); CMYK takes it negated on C, M, Y (more red =
    less cyan) and leaves black alone."""
    if colour == "gray":
        luma = (delta * delta.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
        peak = float(luma.abs().max())
        return luma * (float(delta.abs().max()) / peak) if peak > 0 else luma
    if colour == "cmyk":
        return -delta
    return delta


# ----------------------------------------------------------------------------------------------
# Folder jobs


@dataclass
class ProtectOptions:
    format: str | None = None  # None: same as input
    quality: int = 95
    metadata: str = "safe"
    overwrite: bool = False
    dry_run: bool = False
    shard: tuple[int, int] | None = None  # (k, n), 1-based k
    group_by: str = "auto"
    clusters: int | None = None
    super_groups: int = 0  # super-groups of folders/clusters sharing half their texture (0: none; see grouping.py)
    key_candidates: int | None = KEY_CANDIDATES  # a new group's key: least alike of its N nearest concepts (None, 0: all)
    max_pixels: int = imageio.DEFAULT_MAX_PIXELS
    fail_fast: bool = False
    batch_size: int = 16
    workers: int = field(default_factory=default_workers)  # threads for decoding, embedding (CPU) and encoding
    folder_sample: int = 64  # photos per folder that decide the folder's key (group_by folder)
    keys_file: Path | None = None  # which key each folder/cluster got, kept between runs; None: DST/.ucprotect-keys.json
    keys_only: bool = False  # choose and record keys for every folder (all shards), protect nothing


@dataclass
class ImageRow:
    input: str
    output: str
    status: str = "pending"  # done | skipped | failed | planned
    reason: str = ""
    group: str = ""
    key: int = -1
    shared_key: int = -1  # the super-group's shared key of a two-level texture; -1: one-level
    width: int = 0
    height: int = 0
    psnr: float | None = None
    ssim: float | None = None
    linf: float | None = None  # in 0-255 units
    input_sha256: str = ""
    output_sha256: str = ""


@dataclass
class ProtectResult:
    rows: list[ImageRow] = field(default_factory=list)
    seconds: float = 0.0
    group_by: str = ""
    interrupted: bool = False
    keys_file: str = ""  # the keys file used, if any
    groups_recorded: int = 0  # groups whose key came from the keys file
    groups_new: int = 0  # groups given a key by this run
    left_out: dict[str, int] = field(default_factory=dict)  # files under SRC not in a format we read, by extension

    @property
    def photos_left_out(self) -> dict[str, int]:
        """The left-out files whose extension says photo (HEIC, GIF, camera raw...): not protected, though a user
        may think they were."""
        return {ext: n for ext, n in self.left_out.items() if ext in imageio.UNSUPPORTED_PHOTO_EXTENSIONS}

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def failed(self) -> int:
        return self.count("failed")

    def quality(self) -> dict:
        p = [r.psnr for r in self.rows if r.status == "done" and r.psnr is not None]
        s = [r.ssim for r in self.rows if r.status == "done" and r.ssim is not None]
        finite = [v for v in p if np.isfinite(v)]
        return {
            "mean_psnr": float(np.mean(finite)) if finite else None,
            "worst_psnr": float(min(finite)) if finite else None,
            "mean_ssim": float(np.mean(s)) if s else None,
            "worst_ssim": float(min(s)) if s else None,
        }

    def summary(self) -> dict:
        return {"done": self.count("done"), "skipped": self.count("skipped"), "failed": self.failed,
                "planned": self.count("planned"), "seconds": round(self.seconds, 3), "group_by": self.group_by,
                "keys_file": self.keys_file, "groups_recorded": self.groups_recorded, "groups_new": self.groups_new,
                "interrupted": self.interrupted, "left_out": dict(self.left_out), **self.quality()}

    def write_report(self, path: Path) -> None:
        data = {"summary": self.summary(), "images": [asdict(r) for r in self.rows]}
        text = json.dumps(data, indent=1, allow_nan=False, default=_json_default)
        imageio.write_atomic(Path(path), lambda fh: fh.write(text.encode()), option="--report")


def _json_default(o):
    return None if isinstance(o, float) else str(o)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write it as K/N, e.g. 2/8 for the second of 8 shards") from None
    if not (n >= 1 and 1 <= k <= n):
        raise ConfigError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Deterministic split by a hash of the path (or folder), stable across machines and file orders."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % n == k - 1


def output_path(src_root: Path, dst_root: Path, path: Path, fmt: str | None) -> Path:
    rel = path.relative_to(src_root) if src_root.is_dir() else Path(path.name)
    out = dst_root / rel
    if fmt:
        suffix = imageio.OUTPUT_SUFFIX[fmt.upper()]
        if out.suffix.lower() not in imageio.FORMAT_EXTENSIONS[fmt.upper()]:
            out = out.with_suffix(suffix)
    return out


def check_paths(src: Path, dst: Path) -> tuple[Path, Path]:
    try:
        src, dst = Path(src).expanduser().resolve(), Path(dst).expanduser().resolve()
    except (RuntimeError, OSError) as e:  # a symbolic-link loop (RuntimeError before Python 3.13, OSError after)
        raise ConfigError(f"{src} or --out {dst}: cannot follow the path ({e}); fix or remove the looping link") from None
    if not src.exists():
        raise ConfigError(f"{src}: no such file or folder")
    root = src if src.is_dir() else src.parent
    if dst == root or root in dst.parents:
        raise ConfigError(f"--out {dst} is inside the input folder {root}; choose an output folder outside it")
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"--out {dst} exists and is not a folder")
    return src, dst


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def protect_folder(src: str | Path, dst: str | Path, protector: Protector, options: ProtectOptions | None = None,
                   on_event: Callable[[str, ImageRow | int], None] | None = None) -> ProtectResult:
    """Protect every image under ``src`` into the mirror folder ``dst``.

    ``on_event(kind, payload)`` receives ``("total", n)``, ``("start_embedding", n)``, ``("embedded", 1)``
    and ``("image", row)`` as work completes. Failures of single images are recorded in their rows;
    with ``fail_fast`` the first one is raised instead.
    """
    opts = options or ProtectOptions()
    if opts.format and opts.format.upper() not in imageio.OUTPUT_SUFFIX:
        raise ConfigError(f"--format {opts.format}: choose png, jpeg, webp, tiff or bmp")
    if not 1 <= opts.quality <= 100:
        raise ConfigError(f"--quality {opts.quality}: must be 1..100")
    if opts.metadata not in imageio.METADATA_POLICIES:
        raise ConfigError(f"--metadata {opts.metadata}: choose {', '.join(imageio.METADATA_POLICIES)}")
    require_at_least(("--batch-size", opts.batch_size, 1), ("--max-pixels", opts.max_pixels, 1),
                     ("--clusters", opts.clusters, 1))  # --clusters None: the silhouette's count
    emit = on_event or (lambda *_: None)
    t0 = time.perf_counter()
    src, dst = check_paths(Path(src), Path(dst))
    root = src if src.is_dir() else src.parent
    images, others = imageio.find_images(src, exclude=dst)
    rel = [p.relative_to(root) for p in images]
    mode = resolve_mode(opts.group_by, rel)
    if opts.shard and mode == "cluster":
        raise ConfigError("--shard with cluster grouping: clusters need the whole collection; use --group-by folder or none")
    if opts.super_groups < 0:
        raise ConfigError(f"--super-groups {opts.super_groups}: needs N >= 0 (0: no super-groups)")
    if opts.super_groups and protector is not None and not protector.generator.two_level:
        raise ConfigError(f"--super-groups {opts.super_groups}: these weights draw no two-level textures (v4, for one, "
                          "draws two textures side by side); protect without --super-groups, or with weights that "
                          "do, e.g. the shipped default or --weights weights/ucprotect-conse-v3.safetensors")
    if opts.keys_only and mode not in ("folder", "cluster"):
        raise ConfigError(f"--keys-only: grouping is {mode!r}; keys are recorded for folder and cluster grouping only")
    shard_key = (lambda r: r.parent.as_posix()) if mode == "folder" else (lambda r: r.as_posix())
    chosen = [(p, r) for p, r in zip(images, rel) if opts.keys_only or in_shard(shard_key(r), opts.shard)]
    rows = [ImageRow(input=str(p), output=str(output_path(root, dst, p, opts.format))) for p, _ in chosen]
    result = ProtectResult(rows=rows, group_by=mode,
                           left_out=dict(sorted(Counter(p.suffix.lower() or "no extension" for p in others).items())))
    emit("total", len(rows))
    if not opts.dry_run:
        try:
            dst.mkdir(parents=True, exist_ok=True)
            probe = dst / f".write-test{imageio.TEMP_MARKER}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"--out {dst}: cannot write there ({e.strerror or e}); choose a writable folder") from None
        imageio.remove_stale_temp_files(dst)
    # two inputs written to one output (a.png and a.jpg under --format jpeg, or b.JPG and b.jpg where the file
    # system ignores case): the first in path order keeps it; decided over the whole collection, so every shard agrees
    fold_case = not opts.dry_run and imageio.names_fold_case(dst)
    same = (lambda out: out.casefold()) if fold_case else (lambda out: out)
    claimant: dict[str, Path] = {}
    for p in images:
        claimant.setdefault(same(str(output_path(root, dst, p, opts.format))), p)
    for row in rows:
        first = claimant[same(row.output)]
        if first != Path(row.input):
            why = " (this file system does not tell upper from lower case)" if fold_case else ""
            row.status, row.reason = "failed", (f"{row.input}: {first.name} beside it goes to the same output {row.output}"
                                                f"{why}; rename one of the two" + ("" if fold_case else ", or protect without --format"))
            emit("image", row)
        elif opts.keys_only:
            row.status, row.reason = "planned", "--keys-only: key chosen and recorded, not protected"
        elif not opts.overwrite and Path(row.output).is_file():  # a folder of that name is no finished output
            row.status, row.reason = "skipped", "output exists (use --overwrite to redo)"
            emit("image", row)
    pending = [i for i, r in enumerate(rows) if r.status == "pending"]
    all_rel = [r for _, r in chosen]
    record, keys_path = None, None
    if mode in ("folder", "cluster") and not opts.dry_run:
        keys_path = Path(opts.keys_file) if opts.keys_file else dst / KEYS_FILE_NAME
        try:
            record = KeyRecord.load(keys_path, protector.weights_id, protector.legacy_weights_ids)
        except OtherWeightsKeysError as e:
            match = shipped_weights_with_fingerprint(e.weights_id)
            if match is None:
                raise
            raise OtherWeightsKeysError(f"{keys_path}: keys file was made with the shipped {match.name}; continue this folder "
                                        f"with --weights {match}, or pass --keys with a new path to start a separate set of "
                                        "patterns with these weights", e.weights_id) from None
        result.keys_file = str(keys_path)
    # Which photos need embeddings: folders not in the keys file at a fixed sample of each, clustering every
    # photo of the collection unless the keys file holds its clusters already (then the photos to protect),
    # "none" only the pending ones. A resumed or extended run thus keeps every recorded key.
    if mode == "folder":
        need = [i for i in folder_sample(all_rel, opts.folder_sample) if all_rel[i].parent.as_posix() not in record.folders] \
            if record is not None else []
    elif mode == "cluster":
        need = pending if record is not None and record.centroids else list(range(len(rows)))
    else:
        need = pending
    try:
        if opts.dry_run:
            for i in pending:
                rows[i].status = "planned"
        elif pending or opts.keys_only:
            # a folder's key comes from the mean of many photos: mirror-image TTA would only double the cost
            tta = protector.tta and mode != "folder"
            embeddings = _embed_all(protector, [chosen[i][0] for i in need], opts, rows, need, emit, tta) if need else {}
            if mode == "folder":  # a new folder whose sampled photos all failed: embed the rest of it
                new = {all_rel[i].parent for i in need}
                have = {all_rel[i].parent for i in embeddings}
                rest = [i for i in range(len(rows)) if all_rel[i].parent in new - have and i not in embeddings
                        and rows[i].status != "failed"]
                if rest:
                    embeddings.update(_embed_all(protector, [chosen[i][0] for i in rest], opts, rows, rest, emit, tta))
            _choose_keys(protector, embeddings, all_rel, mode, opts, rows, pending, record, result)
            if record is not None and result.groups_new:
                record.save(keys_path)
            for i in pending:
                if rows[i].status == "pending" and rows[i].key < 0:
                    rows[i].status, rows[i].reason = "failed", f"{rows[i].input}: no concept key (its concept embedding failed)"
                    emit("image", rows[i])
            if not opts.keys_only:
                _perturb_all(protector, [i for i in pending if rows[i].status == "pending"], rows, opts, emit)
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        result.seconds = time.perf_counter() - t0
    for i in pending:
        if rows[i].status == "pending":
            rows[i].status = "failed"
    return result


def _choose_keys(protector: Protector, embeddings: dict[int, torch.Tensor], all_rel: list[Path], mode: str,
                 opts: ProtectOptions, rows: list[ImageRow], pending: list[int], record: KeyRecord | None,
                 result: ProtectResult) -> None:
    """Set each pending row's key and group from the embeddings and the keys file; count the groups."""
    before = (set(record.folders), len(record.cluster_keys)) if record is not None else (set(), 0)
    ok = sorted(embeddings)
    if ok:
        emb = torch.stack([embeddings[i] for i in ok])
        chosen = assign_keys(emb, [all_rel[i] for i in ok], mode, protector.key_embeddings,
                             protector.bundle.coarse_keys, opts.clusters, texture_similarity=protector.texture_similarity,
                             record=record, super_groups=opts.super_groups, key_candidates=opts.key_candidates)
        for i, k, s, g in zip(ok, chosen.keys.tolist(), chosen.shared.tolist(), chosen.groups):
            rows[i].key, rows[i].shared_key, rows[i].group = k, s, g
    if record is None:
        return
    if mode == "folder":  # every photo of a folder takes the folder's key, recorded or just chosen
        for i in pending:
            folder = all_rel[i].parent.as_posix()
            if rows[i].status == "pending" and folder in record.folders:
                rows[i].key, rows[i].group = record.folders[folder], folder
                rows[i].shared_key = record.shared.get(folder, -1)
        result.groups_new = len(set(record.folders) - before[0])
        result.groups_recorded = len({r.parent.as_posix() for r in all_rel} & before[0])
    else:
        result.groups_recorded = before[1]
        result.groups_new = len(record.cluster_keys) - before[1]


def _fail(row: ImageRow, err: Exception, opts: ProtectOptions, emit) -> None:
    row.status, row.reason = "failed", str(err)
    emit("image", row)
    if opts.fail_fast:
        raise err


def _embed_all(protector: Protector, paths: list[Path], opts: ProtectOptions, rows: list[ImageRow],
               index: list[int], emit, tta: bool) -> dict[int, torch.Tensor]:
    """Pass 1: concept embeddings of the photos ``paths`` (rows ``index``), a chunk of thumbnails a worker
    job, at most a few chunks ahead of the results (so memory stays bounded and Ctrl-C stops promptly).

    On CPU each job also embeds its chunk, with a one-thread model (one per worker, so every core is busy).
    Why one thread: a photo's embedding differs in the 7th digit between thread counts, enough to tip a
    close call between two keys, so with the model on all cores the keys (hence the output bytes) would
    depend on the machine's core count. Wall time is unchanged within this VM's noise. On a GPU the
    main thread embeds each chunk.
    """
    size = protector.backbone.image_size
    on_workers = protector.device.type == "cpu"
    step = CPU_MICRO_BATCH if on_workers else opts.batch_size
    chunks = [range(s, min(s + step, len(paths))) for s in range(0, len(paths), step)]

    def job(chunk: range) -> tuple[list[int], list[tuple[int, UcprotectError]], list[Image.Image] | torch.Tensor]:
        thumbnails, ok, failed = [], [], []
        for j in chunk:
            try:
                thumbnails.append(imageio.load_thumbnail(paths[j], size, opts.max_pixels, 1.0))
                ok.append(j)
            except UcprotectError as e:
                failed.append((j, e))
        return ok, failed, (protector.embed(thumbnails, tta) if on_workers and thumbnails else thumbnails)

    out: dict[int, torch.Tensor] = {}
    emit("start_embedding", len(paths))
    workers = max(1, opts.workers)
    threads = torch.get_num_threads()
    if on_workers:
        torch.set_num_threads(1)
    with ThreadPoolExecutor(workers) as pool:
        futures: dict[int, Future] = {}
        try:
            for n in range(len(chunks)):
                for m in range(n, min(n + workers + 1, len(chunks))):  # keep the workers busy, not further
                    if m not in futures:
                        futures[m] = pool.submit(job, chunks[m])
                ok, failed, done = futures.pop(n).result()
                for j, e in failed:
                    _fail(rows[index[j]], e, opts, emit)
                if ok:
                    for j, e in zip(ok, done if on_workers else protector.embed(done, tta)):
                        out[index[j]] = e
                for _ in chunks[n]:
                    emit("embedded", 1)
        finally:  # a failure (or Ctrl-C) drops the chunks not yet started
            for fut in futures.values():
                fut.cancel()
            if on_workers:
                torch.set_num_threads(threads)
    return out


def _load_checked(path: Path, max_pixels: int) -> tuple[imageio.Photo, np.ndarray | None]:
    """The photo, and for 8-bit RGB photos the luminance SSIM compares (taken from the decoded image
    while it is at hand, which saves converting the pixel array back into an image)."""
    photo = imageio.load_photo(path, max_pixels, keep_image=True)
    w, h = photo.size
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{path}: {w}x{h} is smaller than the minimum {MIN_SIDE} px on the short side")
    luma = ssim_luma(photo.image) if _rgb8(photo) else None
    photo.image = None  # do not hold a second copy of the pixels while the photo waits its turn
    return photo, luma


def _rgb8(photo: imageio.Photo) -> bool:
    """Whether the photo's native pixels are its 8-bit RGB ones (then the metrics need no conversion)."""
    return photo.colour == "rgb" and photo.max_value == 255


def _write(protector: Protector, photo: imageio.Photo, pixels: np.ndarray, row: ImageRow, opts: ProtectOptions,
           before_luma: np.ndarray | None = None) -> ImageRow:
    image = imageio.photo_to_image(photo, pixels)
    imageio.save_photo(photo, pixels, Path(row.output), opts.format, opts.quality, opts.metadata, image=image)
    if _rgb8(photo):  # native pixels are the RGB ones: no conversions
        squares, linf, count = difference_stats(photo.pixels, pixels)
        row.linf = float(linf)
        row.ssim = ssim_of_luma(before_luma, ssim_luma(image)) if before_luma is not None else ssim(photo.pixels, pixels)
    else:
        before, after = photo.rgb8(), imageio.to_rgb8(photo.colour, pixels)
        squares, _, count = difference_stats(before, after)
        row.ssim = ssim(before, after)
        diff = np.abs(pixels.astype(np.int32) - photo.pixels.astype(np.int32)).max()
        row.linf = float(diff) * 255.0 / photo.max_value
    row.psnr = psnr_from_stats(squares, count)
    row.input_sha256 = sha256_file(photo.path)
    row.output_sha256 = sha256_file(Path(row.output))
    row.status = "done"
    return row


def _protect_one(protector: Protector, row: ImageRow, opts: ProtectOptions) -> ImageRow:
    """Load, perturb and write one photo: the whole job on a worker thread (textures drawn by table lookup)."""
    photo, luma = _load_checked(Path(row.input), opts.max_pixels)
    row.width, row.height = photo.size
    return _write(protector, photo, protector.perturb_pixels(photo, row.key, row.shared_key), row, opts, luma)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # reported when it is loaded


def _perturb_all(protector: Protector, todo: list[int], rows: list[ImageRow], opts: ProtectOptions, emit) -> None:
    """Pass 2. With a lookup texture (no model to run) each photo is one worker job, so every core decodes,
    perturbs and encodes; otherwise workers load and write while the main thread runs the generator."""
    window = max(2, 2 * opts.workers)
    on_workers = protector.generator.has_periodic_form
    # largest files first (longest-processing-time order): no core is left finishing a big photo alone at
    # the end (50 camera photos on 2 cores: pass 2 1.65 s against 1.81 s in folder order)
    todo = sorted(todo, key=lambda i: -_file_size(rows[i].input))
    with ThreadPoolExecutor(max(1, opts.workers)) as pool:
        loads: dict[int, Future] = {}
        writes: list[tuple[int, Future]] = []

        def drain(keep: int) -> None:
            """Report finished jobs in order, waiting for the oldest while more than ``keep`` are in flight."""
            while writes and (len(writes) > keep or writes[0][1].done()):
                i, fut = writes.pop(0)
                try:
                    fut.result()
                    emit("image", rows[i])
                except UcprotectError as e:
                    _fail(rows[i], e, opts, emit)

        try:
            for n, i in enumerate(todo):
                if on_workers:
                    writes.append((i, pool.submit(_protect_one, protector, rows[i], opts)))
                    drain(keep=window - 1)
                    continue
                for j in todo[n:n + window]:
                    if j not in loads:
                        loads[j] = pool.submit(_load_checked, Path(rows[j].input), opts.max_pixels)
                try:
                    photo, luma = loads.pop(i).result()
                    rows[i].width, rows[i].height = photo.size
                    pixels = protector.perturb_pixels(photo, rows[i].key, rows[i].shared_key)
                except UcprotectError as e:
                    _fail(rows[i], e, opts, emit)
                    continue
                writes.append((i, pool.submit(_write, protector, photo, pixels, rows[i], opts, luma)))
                drain(keep=window)
            drain(keep=0)
        except BaseException:
            for fut in loads.values():
                fut.cancel()
            for _, fut in writes:  # let writes already started finish: each is atomic anyway
                fut.cancel()
                try:
                    fut.result()
                except Exception:
                    pass
            raise
