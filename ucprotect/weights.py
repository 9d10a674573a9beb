"""The weights file: one ``.safetensors`` with the generator and everything needed to rebuild and check it.

Tensors: ``generator.*`` (state dict), ``backbone.*`` (what the backbone needs offline, e.g. ConSE's
class text embeddings), ``concepts.coarse_keys``. Metadata (strings): format name and version, the
generator config, the backbone spec, the concept vocabulary, the training budget and objective.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import WeightsError
from .generator import GeneratorConfig, create_generator
from .imageio import write_atomic

FORMAT = "ucprotect-generator"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS_NAME = "ucprotect-conse-v5.safetensors"


@dataclass
class WeightsBundle:
    generator: torch.nn.Module
    config: GeneratorConfig
    backbone: str
    backbone_tensors: dict[str, torch.Tensor]
    concept_names: list[str]
    coarse_keys: torch.Tensor
    metadata: dict = field(default_factory=dict)

    @property
    def train_epsilon(self) -> float:
        return float(self.metadata.get("epsilon", 8))


def default_weights_path() -> Path:
    """The shipped generator: the repository's ``weights/`` folder (a clone or an editable install), else
    ``<prefix>/share/ucprotect/weights/`` where a wheel puts it (pyproject's data-files). When neither
    has it, the repository path, so the error names where it was expected."""
    repo = Path(__file__).resolve().parent.parent / "weights" / DEFAULT_WEIGHTS_NAME
    for root in (repo.parent, *installed_weights_dirs()):
        if (root / DEFAULT_WEIGHTS_NAME).exists():
            return root / DEFAULT_WEIGHTS_NAME
    return repo


# Generator settings added since keys files began to fingerprint settings (session 15), oldest first. One at its
# default is left out of the fingerprint, so that adding a setting leaves earlier weights' keys files valid.
LATER_SETTINGS = (("luma_factor",), ("chroma_sharpness",), ("split_layout",), ("split_min_px", "small_factor"), ("colour_rows",))
LEGACY_GROUPS = 3  # sessions 17-19 fingerprinted every setting of the first groups, defaults included


def _fingerprint(generator: torch.nn.Module, settings: dict | None) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode() if settings is not None else b"")
    for name, tensor in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _settings(generator: torch.nn.Module) -> tuple[dict, set[str], set[str]]:
    """The generator's settings, the later ones (LATER_SETTINGS), and which of those differ from their defaults."""
    settings, defaults = generator.config.to_dict(), GeneratorConfig().to_dict()
    later = {name for group in LATER_SETTINGS for name in group}
    return settings, later, {name for name in later if settings[name] != defaults[name]}


def generator_fingerprint(generator: torch.nn.Module) -> str:
    """A fingerprint of a generator's settings and tensors: keys files record it, because the keys chosen for
    one set of textures fit no other. The settings count: v2, v3 and v4 hold the same tensors and draw them
    in other ways."""
    settings, later, changed = _settings(generator)
    return _fingerprint(generator, {k: v for k, v in settings.items() if k not in later or k in changed})


def legacy_fingerprints(generator: torch.nn.Module) -> tuple[str, ...]:
    """What earlier versions recorded for the same textures, so their keys files still resume: sessions 17-19
    fingerprinted every setting they knew, defaults included (each set of LATER_SETTINGS but the newest), and
    before session 15 the tensors alone, when v2's band (12-24 cycles) was the only one shipped."""
    settings, later, changed = _settings(generator)
    known, ids = set(settings) - later, []
    for group in LATER_SETTINGS[:LEGACY_GROUPS]:
        known |= set(group)
        if changed <= known:
            ids.append(_fingerprint(generator, {k: settings[k] for k in known}))
    config = generator.config
    if not changed and (config.min_cycles, config.max_cycles) == (12.0, 24.0):
        ids.append(_fingerprint(generator, None))
    return tuple(ids)


def shipped_weights_with_fingerprint(fingerprint: str) -> Path | None:
    """The file among the shipped weights (the default and the earlier defaults kept beside it, e.g. v3) whose
    generator has ``fingerprint``, today's or an earlier version's: lets a refused resume name the ``--weights``
    that continues it."""
    for path in sorted(default_weights_path().parent.glob("*.safetensors")):
        try:
            generator = load_weights(path).generator
        except WeightsError:
            continue
        if fingerprint == generator_fingerprint(generator) or fingerprint in legacy_fingerprints(generator):
            return path
    return None


def installed_weights_dirs() -> list[Path]:
    """Where pip puts a wheel's data files: the environment's prefix, or the user base for ``--user``."""
    import site
    import sys
    import sysconfig

    roots = [sysconfig.get_path("data"), sys.prefix, getattr(site, "USER_BASE", None)]
    return list(dict.fromkeys(Path(r) / "share" / "ucprotect" / "weights" for r in roots if r))


def save_weights(path: Path, generator, backbone: str, backbone_tensors: dict[str, torch.Tensor],
                 concept_names: list[str], coarse_keys: torch.Tensor, metadata: dict | None = None) -> Path:
    """Write the weights file atomically (temp file, then rename)."""
    from safetensors.torch import save

    tensors = {f"generator.{k}": v.detach().float().contiguous().cpu() for k, v in generator.state_dict().items()}
    tensors.update({f"backbone.{k}": v.detach().contiguous().cpu() for k, v in backbone_tensors.items()})
    tensors["concepts.coarse_keys"] = coarse_keys.long().contiguous().cpu()
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    meta.update(format=FORMAT, format_version=str(FORMAT_VERSION), generator_config=json.dumps(generator.config.to_dict()),
                backbone=backbone, concept_names=json.dumps(list(concept_names)))
    data = _sorted_metadata(save(tensors, metadata=meta))
    return write_atomic(Path(path), lambda fh: fh.write(data), option="--export")


def _sorted_metadata(raw: bytes) -> bytes:
    """The serialised file with its header's metadata keys sorted: safetensors writes them in hash order, which changes
    from run to run, so the same weights would otherwise give files that differ in bytes (and in SHA-256)."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads its header with spaces to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + raw[8 + n:]


def read_metadata(path: Path) -> dict:
    """The metadata of a weights file, parsed; raises :class:`WeightsError` for anything that is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found; pass --weights with the path of a .safetensors file made by 'ucprotect train'")
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder; pass the .safetensors file inside it")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path}: not a readable safetensors file (corrupt or truncated?): {str(e).splitlines()[0]}") from None
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: a safetensors file, but not a ucprotect generator (no '{FORMAT}' metadata)")
    version = meta.get("format_version", "?")
    if version != str(FORMAT_VERSION):
        raise WeightsError(f"{path}: weights format version {version}, this ucprotect reads version {FORMAT_VERSION}; upgrade ucprotect or re-export the weights")
    parsed = {}
    for k, v in meta.items():
        try:
            parsed[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            parsed[k] = v
    return parsed


def load_weights(path: Path | None = None, device: str | torch.device = "cpu") -> WeightsBundle:
    """Validate and load a weights file: format, version, architecture, then a strict state-dict load.

    The tensors are read into memory, not memory-mapped: a file copied over in place while a run is going
    (``cp new.safetensors weights/...``) must not change the keys under it.
    """
    from safetensors.torch import load

    shipped = not path
    path = Path(path) if path else default_weights_path()
    if shipped and not path.exists():
        elsewhere = ", ".join(str(d) for d in installed_weights_dirs())
        raise WeightsError(f"{path}: the shipped weights are missing (not there, nor in {elsewhere}); reinstall "
                           f"ucprotect ('pip install -e .' from a clone keeps them in its weights/ folder), "
                           f"or pass --weights with the path of a .safetensors file")
    meta = read_metadata(path)
    try:
        config = GeneratorConfig.from_dict(meta["generator_config"])
        generator = create_generator(config)
        tensors = load(path.read_bytes())
    except WeightsError:
        raise
    except Exception as e:
        raise WeightsError(f"{path}: cannot rebuild the generator: {e}") from None
    state = {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{path}: tensors do not match the {config.arch} architecture it declares: {str(e).splitlines()[0]}") from None
    if "concepts.coarse_keys" not in tensors:
        raise WeightsError(f"{path}: missing tensor concepts.coarse_keys")
    names = meta.get("concept_names")
    if not isinstance(names, list) or len(names) != config.num_keys:
        raise WeightsError(f"{path}: concept vocabulary has {len(names) if isinstance(names, list) else 0} names, the generator {config.num_keys} keys")
    generator.eval().to(device)
    return WeightsBundle(
        generator=generator,
        config=config,
        backbone=meta["backbone"],
        backbone_tensors={k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")},
        concept_names=names,
        coarse_keys=tensors["concepts.coarse_keys"].long(),
        metadata=meta,
    )
