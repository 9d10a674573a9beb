"""``verify``: train a victim the way a data thief would, on clean and on protected copies, and compare.

Split a class-folder dataset (stratified, seeded), protect the train split (or take an existing
protected copy), train the same victim with the same recipe and seed on clean-train, protected-train
and protected-train under each defence, and measure accuracy on the *clean* test split every epoch.
Score = (clean - protected) / (clean - chance), from peak-over-epochs accuracies (a thief can stop early).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from . import imageio
from .errors import ConfigError, DataError, ImageError, require_at_least
from .transforms import gaussian_blur, grayscale, random_resized_crop
from .victims import create_victim

DEFENSES = ("jpeg", "grayscale", "blur", "downup", "heavyaug", "mixup")


@dataclass
class Recipe:
    victim: str = "resnet18"
    image_size: int = 64
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    seed: int = 0
    # bf16 autocast: None = on CUDA only; True also on the CPU, where oneDNN runs it on AMX units (Xeon
    # Sapphire Rapids and later: a 64 px ResNet-18 step ~4x faster than fp32) but slowly on CPUs without them
    bf16: bool | None = None

    def check(self) -> None:
        """Refuse settings no training run can use, before any image is loaded."""
        from .victims import list_victims

        if self.victim not in list_victims():
            raise ConfigError(f"--victim {self.victim}: unknown; choose {', '.join(list_victims())}")
        require_at_least(("--image-size", self.image_size, 16), ("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1))
        if not self.lr > 0:
            raise ConfigError(f"--lr {self.lr}: must be above 0")


PRESETS = {
    "quick": Recipe(victim="small-cnn", image_size=64, epochs=20, batch_size=64, lr=0.05),
    "standard": Recipe(victim="resnet18", image_size=64, epochs=20, batch_size=64, lr=0.05),
    "paper": Recipe(victim="resnet18", image_size=224, epochs=200, batch_size=128, lr=0.1),
}


@dataclass
class Dataset:
    paths: list[Path]
    labels: list[int]
    class_names: list[str]
    root: Path


def load_class_folders(root: Path, max_per_class: int | None = None, seed: int = 0) -> Dataset:
    """``root/<class>/<images>``; classes are sorted folder names."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; verify needs DATA_DIR/<class>/<images>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths, labels, names = [], [], []
    rng = np.random.default_rng(seed)
    for name in classes:
        files, _ = imageio.find_images(root / name)
        if max_per_class and len(files) > max_per_class:
            files = sorted(rng.choice(np.array(files, dtype=object), max_per_class, replace=False).tolist())
        if files:
            names.append(name)
            paths += files
            labels += [len(names) - 1] * len(files)
    if len(names) < 2:
        raise DataError(f"{root}: found {len(names)} class folders with images; verify needs at least 2")
    return Dataset(paths, labels, names, root)


def link_split(paths: list[Path], root: Path, dst: Path) -> Path:
    """Symlink ``paths`` (under ``root``) into ``dst`` with the same layout, so that protect sees one split only."""
    for p in paths:
        link = dst / p.relative_to(root)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(p.resolve(), link)
    return dst


def stratified_split(labels: list[int], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, test): per class, a seeded shuffle and the first round(n * fraction) (>= 1) to test."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"--test-fraction {test_fraction}: must be between 0 and 1")
    rng = np.random.default_rng(seed)
    train, test = [], []
    labels_arr = np.asarray(labels)
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        rng.shuffle(idx)
        k = max(1, round(len(idx) * test_fraction)) if len(idx) > 1 else 0
        test += idx[:k].tolist()
        train += idx[k:].tolist()
    return sorted(train), sorted(test)


def cluster_count(labels: str) -> int:
    """N of ``--labels clusters:N``."""
    try:
        return int(labels.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"--labels {labels}: write clusters:N, e.g. clusters:20") from None


def cluster_labels(class_names: list[str], n: int, text_encoder, seed: int = 0) -> list[int]:
    """Group class names into ``n`` clusters by their text embeddings (the paper's label-agnostic setting)."""
    from .clustering import kmeans

    emb = text_encoder([f"a photo of a {c.replace('_', ' ')}" for c in class_names])
    labels, _ = kmeans(emb, min(n, len(class_names)), seed=seed)
    # renumber densely in order of first appearance so ids are stable and contiguous
    order = {}
    return [order.setdefault(int(l), len(order)) for l in labels.tolist()]


def load_tensor(paths: list[Path], size: int) -> torch.Tensor:
    """uint8 N x 3 x size x size: short side resized to ``size``, centre crop (thumbnail decoder)."""
    return _stack([imageio.load_square(p, size) for p in paths], size)


def _stack(squares: list[np.ndarray], size: int) -> torch.Tensor:
    if not squares:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    return torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2).contiguous()


def load_readable(paths: list[Path], size: int) -> tuple[torch.Tensor, list[int], list[str]]:
    """As :func:`load_tensor`, skipping files that cannot be decoded: the tensor of the readable ones, their
    indices in ``paths``, and one message per skipped file (a dataset with a few bad files still gets measured)."""
    squares, ok, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            squares.append(imageio.load_square(p, size))
            ok.append(i)
        except ImageError as e:
            skipped.append(str(e))
    return _stack(squares, size), ok, skipped


# ---------------------------------------------------------------------------------------------- defences


def jpeg(images: torch.Tensor, quality: int = 75, subsampling: str = "420") -> torch.Tensor:
    """JPEG round trip per image; ``subsampling`` "420" (Pillow's default below quality 100) or "444" (full-
    resolution chroma, as some editors save at high quality)."""
    if subsampling not in _SUBSAMPLING:
        raise ConfigError(f"jpeg chroma subsampling {subsampling!r}; valid: {', '.join(_SUBSAMPLING)} (e.g. jpeg:75:444)")
    out = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=quality,
                                                           subsampling=_SUBSAMPLING[subsampling])
        out.append(torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1))
    return torch.stack(out) if out else images


_SUBSAMPLING = {"420": 2, "444": 0}  # Pillow's codes

# Extra defences by name (fn: uint8 N x 3 x H x W -> same), for diagnostics that benchmarks add; not CLI options.
_EXTRA_DEFENSES: dict[str, Callable[[torch.Tensor, str], torch.Tensor]] = {}


def register_defense(name: str, fn: Callable[[torch.Tensor, str], torch.Tensor]) -> None:
    """Make ``name[:ARG]`` a defence: ``fn(images, ARG)`` transforms the uint8 training images once."""
    _EXTRA_DEFENSES[name] = fn


def _float_op(images: torch.Tensor, fn) -> torch.Tensor:
    return (fn(images.float() / 255).clamp(0, 1) * 255).round().byte()


def apply_defense(name: str, images: torch.Tensor) -> torch.Tensor:
    """Transform the (protected) training images once, as the thief would before training."""
    kind, _, arg = name.partition(":")
    if kind == "jpeg":
        quality, _, subsampling = arg.partition(":")
        return jpeg(images, int(quality or 75), subsampling or "420")
    if kind == "grayscale":
        return _float_op(images, grayscale)
    if kind == "blur":
        return _float_op(images, lambda x: gaussian_blur(x, float(arg or 1.0)))
    if kind == "downup":
        from .transforms import down_up

        return _float_op(images, lambda x: down_up(x, float(arg or 0.5)))
    if kind in ("heavyaug", "mixup", "none"):
        return images  # applied during training
    if kind in _EXTRA_DEFENSES:
        return _EXTRA_DEFENSES[kind](images, arg)
    raise ConfigError(f"unknown defence {name!r}; valid: {', '.join(DEFENSES)} (jpeg:Q or jpeg:Q:444, blur:SIGMA, downup:FACTOR)")


def parse_defenses(values: list[str]) -> list[str]:
    out = []
    for v in values:
        for item in v.split(","):
            item = item.strip()
            if item == "all":
                out += ["jpeg:75", "grayscale", "blur:1.0", "downup:0.5", "heavyaug", "mixup"]
            elif item:
                apply_defense(item, torch.zeros(0, 3, 8, 8, dtype=torch.uint8))  # checks the name and argument
                out.append(item)
    return out


# ---------------------------------------------------------------------------------------------- training


def _augment(x: torch.Tensor, g: torch.Generator, heavy: bool) -> torch.Tensor:
    """Standard: random crop with reflect padding (1/8 of the side) and flip. Heavy: resized crop, jitter, cutout.
    Random draws come from ``g`` on the CPU whatever device ``x`` is on, so a seed means the same crops everywhere."""
    b, _, s, _ = x.shape
    if heavy:
        x = random_resized_crop(x, s, g, scale=(0.2, 1.0))
        bright = 1 + (torch.rand(b, 1, 1, 1, generator=g).to(x.device) - 0.5) * 0.8
        contrast = 1 + (torch.rand(b, 1, 1, 1, generator=g).to(x.device) - 0.5) * 0.8
        mean = x.mean((1, 2, 3), keepdim=True)
        x = ((x - mean) * contrast + mean) * bright
        sat = 1 + (torch.rand(b, 1, 1, 1, generator=g).to(x.device) - 0.5) * 0.8
        x = grayscale(x) + (x - grayscale(x)) * sat
        cut = s // 3
        r = torch.arange(s)
        ys = torch.randint(0, s - cut + 1, (b,), generator=g)[:, None]
        xs = torch.randint(0, s - cut + 1, (b,), generator=g)[:, None]
        hole = ((r >= ys) & (r < ys + cut))[:, :, None] & ((r >= xs) & (r < xs + cut))[:, None, :]  # b x s x s
        return (x * (~hole).to(x)[:, None]).clamp(0, 1)
    pad = max(1, s // 8)
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    r = torch.arange(s)
    cols = torch.randint(0, 2 * pad + 1, (b,), generator=g)[:, None] + r  # b x s: each image's crop window
    rows = torch.randint(0, 2 * pad + 1, (b,), generator=g)[:, None] + r
    flip = (torch.rand(b, generator=g) < 0.5)[:, None]
    cols = torch.where(flip, cols.flip(-1), cols)  # a mirrored crop reads its columns right to left
    # one gather for the whole batch instead of one small copy per image (fewer kernel launches on a GPU)
    index = (torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None],
             rows[:, None, :, None], cols[:, None, None, :])
    return x[tuple(t.to(x.device) for t in index)]


@contextlib.contextmanager
def _cudnn_autotune(on: bool):
    """cuDNN autotuning for the victim's fixed shapes, switched back afterwards: the caller's setting is theirs."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def train_victim(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, num_classes: int,
                 recipe: Recipe, defense: str = "none", on_epoch: Callable[[int, float], None] | None = None,
                 device: torch.device | str = "cpu") -> list[float]:
    """Train a fresh victim; return clean-test accuracy after each epoch. Deterministic for a seed on the CPU;
    on a GPU the images live on the device and the victim trains in bf16 autocast (same crops, other rounding;
    ``recipe.bf16`` decides)."""
    device = torch.device(device)
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    model = create_victim(recipe.victim, num_classes, recipe.image_size).to(device)
    bf16 = device.type == "cuda" if recipe.bf16 is None else recipe.bf16
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    train_x, train_y, test_x, test_y = (t.to(device) for t in (train_x, train_y, test_x, test_y))
    steps_per_epoch = max(1, (len(train_x) + recipe.batch_size - 1) // recipe.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.15)
    heavy, mixup = defense.startswith("heavyaug"), defense.startswith("mixup")
    gray_test = defense.startswith("grayscale")
    tx = test_x.float() / 255
    if gray_test:
        tx = grayscale(tx)
    accs = []
    with _cudnn_autotune(device.type == "cuda"):
        for epoch in range(recipe.epochs):
            model.train()
            perm = torch.randperm(len(train_x), generator=g)
            for i in range(steps_per_epoch):
                idx = perm[i * recipe.batch_size : (i + 1) * recipe.batch_size].to(device)
                if len(idx) < 2:
                    continue
                x = _augment(train_x[idx].float() / 255, g, heavy)
                y = train_y[idx]
                if mixup:
                    lam = float(np.random.default_rng(recipe.seed * 7919 + epoch * 1000 + i).beta(1.0, 1.0))
                    j = torch.randperm(len(idx), generator=g).to(device)
                    with autocast:
                        out = model(lam * x + (1 - lam) * x[j])
                        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[j])
                else:
                    with autocast:
                        loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            with autocast:
                accs.append(evaluate(model, tx, test_y))
            if on_epoch:
                on_epoch(epoch + 1, accs[-1])
    return accs


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
    return correct / max(1, len(x))


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class RunResult:
    name: str
    accuracy: list[float]

    @property
    def final(self) -> float:
        return self.accuracy[-1]

    @property
    def peak(self) -> float:
        return max(self.accuracy)


@dataclass
class VerifyReport:
    dataset: str
    labels: str
    num_classes: int
    chance: float
    recipe: dict
    train_images: int
    test_images: int
    runs: list[RunResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable images left out, one message each
    seconds: float = 0.0

    def run(self, name: str) -> RunResult:
        return next(r for r in self.runs if r.name == name)

    def score(self, name: str) -> float:
        """(clean - protected) / (clean - chance), peak accuracies; 1 = nothing learned, 0 = no protection."""
        clean = self.run("clean").peak
        denom = clean - self.chance
        return float("nan") if denom <= 0 else (clean - self.run(name).peak) / denom

    def _json_score(self, name: str) -> float | None:
        """The score for tables and JSON: None for the clean run and where none can be read (NaN is not JSON)."""
        score = None if name == "clean" else self.score(name)
        return None if score is None or math.isnan(score) else score

    def rows(self) -> list[dict]:
        return [{"run": r.name, "final": r.final, "peak": r.peak, "score": self._json_score(r.name)} for r in self.runs]

    def bottom_line(self) -> tuple[str, float]:
        """The protected run (any defence) where the thief does best, and its score."""
        prot = [r for r in self.runs if not r.name.startswith("clean")]
        worst = max(prot, key=lambda r: r.peak)
        return worst.name, self.score(worst.name)

    def verdict(self) -> str:
        name, s = self.bottom_line()
        if math.isnan(s):  # nothing to compare against: no score can be read from this run
            return (f"Cannot tell: the model trained on the originals did not beat chance (peak {self.run('clean').peak:.3f}, "
                    f"chance {self.chance:.3f}); give the victim more images or epochs.")
        if s >= 0.7:
            level = "strong: a model trained on the protected copies learns little"
        elif s >= 0.4:
            level = "partial: models learn noticeably less from the protected copies, but still learn"
        elif s >= 0.15:
            level = "weak: protection removes only a small part of what a model learns"
        else:
            level = "none: a model learns about as well from the protected copies as from the originals"
        return f"Protection is {level} (worst case '{name}', score {s:.2f})."

    def to_json(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "runs"}
        d["runs"] = [{"name": r.name, "accuracy": r.accuracy, "final": r.final, "peak": r.peak,
                      "score": self._json_score(r.name)} for r in self.runs]
        d["verdict"] = self.verdict()
        return d


def cpu_name() -> str:
    """The CPU's model name (bf16 numerics differ between CPUs with and without AMX)."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown CPU")
    return name + (" with AMX" if " amx_bf16" in info else "")


class CleanCache(dict):
    """Clean-baseline curves kept in a JSON file, written as each is added, so that a later run on the same
    data, recipe, machine, torch and device reuses them (a ResNet-18 clean run is ~10 min on a 2-core CPU).

    Curves written under another environment are not used; ``stale`` then names that environment."""

    def __init__(self, path: Path | None, device: torch.device | str = "cpu"):
        super().__init__()
        device = torch.device(device)
        gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        self.path = path = None if path is None else Path(path)
        self.environment, self.stale = f"{cpu_name()}, torch {torch.__version__}, {device}{gpu}", None
        if path is not None and not path.parent.is_dir():  # found out now, not after a clean run
            raise DataError(f"{path}: its folder does not exist; create it, or name a file in an existing folder")
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            environment, curves = data["environment"], dict(data["curves"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: not a clean-run cache written by ucprotect ({type(e).__name__}: {e}); "
                            f"pass the name of a new file, or of one an earlier run wrote") from None
        if environment == self.environment:
            self.update(curves)
        else:
            self.stale = environment

    def __setitem__(self, key, curve) -> None:
        super().__setitem__(key, curve)
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"environment": self.environment, "curves": dict(self)}, indent=1))
            tmp.replace(self.path)


def verify_dataset(data_dir: Path, recipe: Recipe, protect_fn: Callable[[list[Path], Path], dict[Path, Path]] | None = None,
                   protected_dir: Path | None = None, labels: str = "folders", defenses: list[str] | None = None,
                   test_fraction: float = 0.2, max_per_class: int | None = None, text_encoder=None,
                   on_progress: Callable[[str, int, float], None] | None = None, workdir: Path | None = None,
                   clean_cache: dict | None = None, device: torch.device | str = "cpu",
                   protected_id: str | None = None, defended_baselines: bool = False) -> tuple[VerifyReport, dict]:
    """Run the whole comparison. ``protect_fn(train_paths, out_dir) -> {input: output}`` makes protected
    copies; or pass ``protected_dir`` holding copies at the same relative paths. Returns the report and
    the tensors used for the sample strip. Victims train on ``device``. ``clean_cache`` (a dict the caller
    keeps) lets several runs on the same data, labels and recipe share one clean-baseline training run (the
    benchmark's rows); with ``protected_id`` (what makes the protected copies: weights, grouping, code) it keeps
    the undefended protected run too, so that a later invocation with other defences trains only those.
    ``defended_baselines``: also train on the *clean* copies through each defence ("clean+D" runs, cached with the
    clean run): a defence costs the thief accuracy by itself (a grey or blurred copy teaches less), and the gap
    between "clean+D" and "protected+D" is what the protection adds against that defence."""
    t0 = time.perf_counter()
    recipe.check()
    if max_per_class is not None and max_per_class < 2:
        raise ConfigError(f"--max-per-class {max_per_class}: must be at least 2 (one to train on, one to test)")
    ds = load_class_folders(data_dir, max_per_class, recipe.seed)
    size = recipe.image_size
    images, readable, skipped = load_readable(ds.paths, size)
    if skipped:  # leave the unreadable files out (and a class left with none); the split is drawn over the rest
        kept = sorted({ds.labels[i] for i in readable})
        if len(kept) < 2:
            raise DataError(f"{data_dir}: fewer than 2 classes have readable images; first unreadable: {skipped[0]}")
        new_label = {c: k for k, c in enumerate(kept)}
        ds = Dataset([ds.paths[i] for i in readable], [new_label[ds.labels[i]] for i in readable],
                     [ds.class_names[c] for c in kept], ds.root)
    if labels == "folders":
        y_all, n_classes = ds.labels, len(ds.class_names)
    elif labels.startswith("clusters:"):
        n = cluster_count(labels)
        if text_encoder is None:
            from .backbones._text import SentenceEncoder

            text_encoder = SentenceEncoder().encode
        groups = cluster_labels(ds.class_names, n, text_encoder, recipe.seed)
        y_all, n_classes = [groups[c] for c in ds.labels], max(groups) + 1
    else:
        raise ConfigError(f"--labels {labels}: use folders or clusters:N")
    train_idx, test_idx = stratified_split(ds.labels, test_fraction, recipe.seed)
    train_paths = [ds.paths[i] for i in train_idx]
    train_clean, test_x = images[train_idx], images[test_idx]
    del images
    y = torch.tensor(y_all)
    train_y, test_y = y[train_idx], y[test_idx]
    if protected_dir is not None:
        mapping = {p: Path(protected_dir) / p.relative_to(ds.root) for p in train_paths}
        missing = [str(v) for v in mapping.values() if not v.exists()]
        if missing:
            raise DataError(f"--protected {protected_dir}: {len(missing)} protected copies missing, e.g. {missing[0]}")
        train_prot = load_tensor([mapping[p] for p in train_paths], size)
    elif protect_fn is not None:
        # the protected copies are read into memory and then deleted, unless the caller asked for a workdir
        with (contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory(prefix="ucprotect-verify-")) as tmp:
            mapping = protect_fn(train_paths, Path(tmp))
            train_prot = load_tensor([mapping[p] for p in train_paths], size)
    else:
        raise ConfigError("verify needs weights to protect with, or --protected DIR")
    counts = torch.bincount(test_y, minlength=n_classes).float()
    report = VerifyReport(dataset=str(data_dir), labels=labels, num_classes=n_classes,
                          chance=float(counts.max() / counts.sum()), recipe=asdict(recipe),
                          train_images=len(train_idx), test_images=len(test_idx), skipped=skipped)
    plan = [("clean", train_clean, "none")]
    plan += [(f"clean+{d}", apply_defense(d, train_clean), d) for d in (defenses or []) if defended_baselines]
    plan += [("protected", train_prot, "none")]
    plan += [(f"protected+{d}", apply_defense(d, train_prot), d) for d in (defenses or [])]
    # the resolved path: the same folder named relatively or absolutely is the same clean run
    clean_key = json.dumps([str(Path(data_dir).resolve()), labels, test_fraction, max_per_class, asdict(recipe)]
                           + ([sorted(skipped)] if skipped else []), sort_keys=True)  # other files skipped: other data
    cache_keys = {"clean": clean_key} | {f"clean+{d}": json.dumps([clean_key, d]) for d in (defenses or [])}
    if protected_id is not None:
        cache_keys["protected"] = json.dumps([clean_key, protected_id])
    for name, xs, defense in plan:
        key = cache_keys.get(name) if clean_cache is not None else None
        if key is not None and key in clean_cache:
            report.runs.append(RunResult(name, list(clean_cache[key])))
            continue
        cb = (lambda e, a, n=name: on_progress(n, e, a)) if on_progress else None
        report.runs.append(RunResult(name, train_victim(xs, train_y, test_x, test_y, n_classes, recipe, defense, cb, device)))
        if key is not None:
            clean_cache[key] = report.runs[-1].accuracy
    report.seconds = time.perf_counter() - t0
    return report, {"clean": train_clean[:6], "protected": train_prot[:6]}


def write_report_files(report: VerifyReport, samples: dict, json_path: Path | None, png_path: Path | None) -> None:
    """The JSON report and the PNG of curves and samples, each written whole or not at all."""
    if json_path:
        text = json.dumps(report.to_json(), indent=1)
        imageio.write_atomic(Path(json_path), lambda fh: fh.write(text.encode()), option="--report")
    if png_path:
        plot = plot_report(report, samples)
        imageio.write_atomic(Path(png_path), lambda fh: plot.save(fh, format="PNG"), option="--plot")


_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def plot_report(report: VerifyReport, samples: dict, width: int = 720) -> Image.Image:
    """Accuracy-per-epoch curves (clean vs protected vs each defence) above a sample strip
    (original / protected / difference amplified 10x). Drawn with Pillow, no plotting dependency."""
    ph, margin = 300, 40
    n = min(6, len(samples["clean"]))
    cell = (width - 2 * margin) // max(1, n)
    img = Image.new("RGB", (width, ph + 3 * cell + 3 * margin), "white")
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = margin, margin, width - 160, ph
    d.rectangle([x0, y0, x1, y1], outline="black")
    epochs = max(len(r.accuracy) for r in report.runs)
    for frac in (0.25, 0.5, 0.75, 1.0):
        yy = y1 - frac * (y1 - y0)
        d.line([x0, yy, x1, yy], fill=(220, 220, 220))
        d.text((4, yy - 6), f"{frac:.2f}", fill="black")
    yy = y1 - report.chance * (y1 - y0)
    d.line([x0, yy, x1, yy], fill=(160, 160, 160))
    for k, r in enumerate(report.runs):
        pts = [(x0 + (x1 - x0) * (i + 1) / epochs, y1 - a * (y1 - y0)) for i, a in enumerate(r.accuracy)]
        colour = _COLOURS[k % len(_COLOURS)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        d.text((x1 + 8, y0 + 14 * k), f"{r.name} {r.peak:.2f}", fill=colour)
    d.text((x0, 8), f"clean-test accuracy per epoch ({report.dataset}, {report.labels}); grey: chance", fill="black")
    for i in range(n):
        c = samples["clean"][i].permute(1, 2, 0).numpy()
        p = samples["protected"][i].permute(1, 2, 0).numpy()
        diff = np.clip((p.astype(np.int16) - c.astype(np.int16)) * 10 + 128, 0, 255).astype(np.uint8)
        for row, arr in enumerate((c, p, diff)):
            tile = Image.fromarray(arr).resize((cell - 4, cell - 4), Image.NEAREST)
            img.paste(tile, (margin + i * cell, ph + margin + row * cell))
    d.text((4, ph + margin - 14), "rows: original / protected / difference x10", fill="black")
    return img
