"""Generators: (image, concept embedding) -> perturbation in [-1, 1], at the image's own resolution.

Two registered architectures:

* ``concept-texture`` (default). The embedding selects one of the concept keys (the vocabulary's text
  embeddings, nearest by cosine); each key owns a texture: a full-amplitude square-wave grating with its
  own frequency (by default 4-8 cycles per image short side), orientation, phase and colour signs.
  Frequencies are defined per short side, so a key draws the same pattern at any resolution; a grating
  is shift-invariant, so it survives any crop. This is the construction that protected in ../shared/PAPER.md
  (measurement 4: 0.78) and in benchmarks/results (0.82 on train/imagenette). 6 k parameters, rendered
  analytically at native resolution (no resizing blur). An optional contrast mask (``mask_floor`` < 1)
  trades strength for PSNR. Two-level textures (``shared`` keys): the square sum of a shared key's wave
  and the key's own, so that groups a thief may merge into one class share half their pattern
  (grouping.py; benchmarks/families.py ``hier``). ``components=2`` makes each key a plaid of two waves,
  with ``coarse_factor`` 0.5 a coarse one beside the fine one (a candidate against blur that lost held out:
  JPEG 75 erased it; benchmarks/results, session 11). Two more candidates against JPEG's chroma subsampling
  that lost (session 17), kept so their rows can be reproduced: ``luma_factor`` > 0 splits each key across
  colour space (its wave in chrominance only beside the same wave at ``luma_factor`` x the frequency in grey,
  half amplitude each: weak undefended), and ``chroma_sharpness`` draws a key's colour edges soft beside
  square luminance (JPEG still took it). ``split_layout = "halves"`` draws the split's two waves at full
  amplitude in different places, the key's colour wave in the image's top half and the grey wave in its bottom
  half (session 19: a steadier floor against the defences than v3's; shipped as v4). ``split_min_px`` keeps
  the halves off photos too small for the grey wave (v4: under 96 px, where it protected cifar10 far less than
  v3, session 20): those get the key's colour wave over the whole photo at twice the band, v3's texture. The same
  setting gives a one-wave texture a coarser band on small photos (``small_factor`` 0.5 on 8-16 cycles: v3's 4-8).
  ``split_layout = "channels"`` puts the two waves in different channels instead, each over the whole photo at
  full amplitude (the band's wave red against blue, the fine wave in green): level with the halves (session 24).
* ``resnet``: the paper's design scaled down: conv encoder, the embedding broadcast and concatenated
  at the bottleneck, residual blocks, transposed-conv decoder, tanh. Runs at a working resolution and
  its output is resized to the photo.

Why the default is not the paper's network: see ../shared/PAPER.md and benchmarks/results: shortcuts
that protect are consistent within a group and survive crops; a per-key periodic texture is both by
construction, and a 121 M-parameter network is neither needed nor affordable on a CPU.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError


@dataclass
class GeneratorConfig:
    """Architecture hyper-parameters; stored in the weights file's metadata and rebuilt from it."""

    arch: str = "concept-texture"
    embed_dim: int = 384  # size of the backbone's embedding space
    num_keys: int = 1000  # concept-texture: one texture per vocabulary concept
    components: int = 1  # concept-texture: gratings per key (1 = the construction measured in PAPER.md; 2 = a plaid)
    coarse_factor: float = 1.0  # components 2: wave 0's band is the band x this (0.5: a coarse wave beside a fine one)
    min_cycles: float = 4.0  # grating frequency range, in cycles per image short side (4-8 keeps most of a key
    max_cycles: float = 8.0  # through blur and down-up at 64 px, where finer bands were erased: session 15)
    sharpness: float = 8.0  # tanh(sharpness * sin): ~square wave, differentiable; small = sine-like
    chroma_sharpness: float = 0.0  # > 0: the colour signs' chrominance follows tanh(this * sin), the luminance
    # tanh(sharpness * sin): soft colour edges beside sharp luminance ones (0: one profile for all)
    luma_factor: float = 0.0  # > 0: a split texture, the key's wave in chrominance only beside its wave at this many
    # times the frequency in luminance only (grey), each at half amplitude; 0: one wave in the key's colours
    split_layout: str = "blend"  # luma_factor > 0: "blend" (the two waves summed, half amplitude each) or "halves"
    # (full amplitude each: the key's own colour wave in the image's top half, the grey wave in its bottom half) or
    # "channels" (full amplitude each, everywhere, in different channels: the band's wave red against blue, the fine
    # wave in green, the channel that carries most of the luminance)
    colour_rows: float = 0.5  # halves: the share of the photo's rows, from the top, that draw the colour wave
    split_min_px: float = 0.0  # a photo whose short side has fewer pixels than this per period of the texture's finest
    # wave (halves or channels: the grey wave, max_cycles x luma_factor; one wave: max_cycles), too few to draw it
    # cleanly, draws the key's colour wave over the whole photo at small_factor x the band instead (v4: 4 px and 2 x,
    # so under 96 px: v3's texture; a one-wave 8-16 band with 6 px and 0.5 x: the same); 0: never
    small_factor: float = 2.0
    mask_floor: float = 1.0  # amplitude on perfectly flat areas (1.0 = no contrast masking)
    mask_ref: float = 0.08  # local std (in [0,1] units) at which full amplitude is reached
    work_size: int = 224  # short side the image branch runs at
    width: int = 16  # resnet: channels after the stem
    blocks: int = 4  # resnet: residual blocks at the bottleneck
    seed: int = 0  # initialisation

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown generator settings {sorted(unknown)}: the weights file is from a newer version")
        config = cls(**d)
        if config.split_layout not in SPLIT_LAYOUTS:
            raise ConfigError(f"split_layout {config.split_layout!r}: the weights file is from a newer version")
        if not 0.0 < config.colour_rows < 1.0:
            raise ConfigError(f"colour_rows {config.colour_rows!r}: the weights file is damaged (the share must be between 0 and 1)")
        return config


SPLIT_LAYOUTS = ("blend", "halves", "channels")
# channels layout: the band's wave in red against blue (strong chrominance, little luminance), the fine wave in green
CHANNEL_COARSE, CHANNEL_FINE = (1.0, 0.0, -1.0), (0.0, 1.0, 0.0)

_REGISTRY: dict[str, Callable[[GeneratorConfig], nn.Module]] = {}


def register_generator(name: str):
    def wrap(cls):
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_generators() -> list[str]:
    return sorted(_REGISTRY)


def create_generator(config: GeneratorConfig) -> nn.Module:
    if config.arch not in _REGISTRY:
        raise ConfigError(f"unknown generator architecture {config.arch!r}; valid: {', '.join(list_generators())}")
    return _REGISTRY[config.arch](config)


def resize_short(images: torch.Tensor, short: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    if min(h, w) == short:
        return images
    s = short / min(h, w)
    return F.interpolate(images, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                         align_corners=False, antialias=True)


def contrast_mask(images: torch.Tensor, floor: float, ref: float, work_size: int) -> torch.Tensor:
    """Per-pixel amplitude in [floor, 1] from local luminance contrast (B x 1 x H x W, image size).

    Computed at the working resolution and upsampled: a perturbation hides in texture and shows on
    flat areas, so flat areas get less of it (the idea behind JPEG's and JND models' masking).
    """
    if floor >= 1.0:
        return images.new_ones(images.shape[0], 1, *images.shape[-2:])
    small = resize_short(images, work_size)
    luma = (small * small.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    mean = F.avg_pool2d(luma, 7, 1, 3, count_include_pad=False)
    var = F.avg_pool2d(luma * luma, 7, 1, 3, count_include_pad=False) - mean * mean
    std = var.clamp(min=0).sqrt()
    mask = floor + (1 - floor) * (std / ref).clamp(max=1.0)
    mask = F.max_pool2d(mask, 5, 1, 2)  # a textured neighbourhood also hides the edge next to it
    return F.interpolate(mask, size=images.shape[-2:], mode="bilinear", align_corners=False)


# Channel sign patterns (R, G, B) with |luminance| >= 0.4 (0.299 R + 0.587 G + 0.114 B), up to sign.
LUMA_SIGNS = ((1, 1, 1), (1, 1, -1), (-1, 1, 1))

# How far apart two gratings' frequencies must be, relative to the frequency, before key choice counts them as
# different textures. A thief's random resized crops zoom by up to 2.2x, so a wider kernel (0.5) spreads a
# collection's keys over orientations and colours first: held out it helped imagenette against heavy
# augmentation (+0.13, 3 seeds) but cost cifar10 (-0.26, -0.17) and caltech101 (-0.05 on the mean of 3 seeds),
# and JPEG stayed the best defence (benchmarks/results/RESULTS.md, session 10). So 0.25.
KEY_LIKENESS_REL_WIDTH = 0.25


def grating_frequency_likeness(cycles: torch.Tensor, angle: torch.Tensor, rel_width: float = KEY_LIKENESS_REL_WIDTH,
                               mirror: bool = True) -> torch.Tensor:
    """K x K x J x J likeness of the frequency vectors of K textures' J gratings (cycles, angles: K x J).

    A Gaussian in the distance between frequency vectors, ``rel_width`` of the smaller frequency wide; v and
    -v are one grating, and with ``mirror`` so are v and its left-right mirror image (angle pi - a).
    """
    v = torch.stack([cycles * torch.cos(angle), cycles * torch.sin(angle)], -1)  # K x J x 2
    a = v[:, None, :, None]  # K x 1 x J x 1 x 2, against every b: 1 x K x 1 x J x 2
    d2 = None
    for b in (v, v * v.new_tensor([-1.0, 1.0])) if mirror else (v,):
        b = b[None, :, None, :]
        d = torch.minimum(((a - b) ** 2).sum(-1), ((a + b) ** 2).sum(-1))
        d2 = d if d2 is None else torch.minimum(d2, d)
    width2 = (rel_width * torch.minimum(cycles[:, None, :, None], cycles[None, :, None, :])) ** 2
    return torch.exp(-d2 / (2 * width2))


@functools.lru_cache(maxsize=8)
def _square_wave_table(bins: int, sharp: float, waves: int) -> torch.Tensor:
    """The square wave tanh(sharp * sin) at the centre of each of ``bins`` phase bins; for two waves, of the
    sum of their sines, indexed phase0 * bins + phase1. The same for every key and photo, so it is made once,
    not per photo. Read-only: callers multiply it into new tensors."""
    sine = torch.sin((torch.arange(bins, dtype=torch.float64) + 0.5) * (2 * math.pi / bins))
    arg = sine if waves == 1 else (sine[:, None] + sine[None, :]).reshape(-1)
    return torch.tanh(arg * sharp).float()


def _unit_wave(sine: torch.Tensor, sharp: float) -> torch.Tensor:
    """The profile tanh(sharp * sine) scaled to peak 1 (large ``sharp``: a square wave; 1: near a sine)."""
    return torch.tanh(sine * sharp) / math.tanh(sharp)


def _unit_wave_table(bins: int, sharp: float) -> torch.Tensor:
    """:func:`_unit_wave` of one wave at the centre of each of ``bins`` phase bins (a new tensor)."""
    return _square_wave_table(bins, sharp, 1) / math.tanh(sharp)


@dataclass
class PeriodicTexture:
    """A texture that depends on linear phases only: ``value[y, x] = table[(y_phase[y] + x_phase[x]) mod bins]``.

    One wave: ``table`` is bins x C (bins a power of two), the phases 1-D arrays, in bins, non-negative. Two
    waves (a two-level texture): the phases are 2 x H and 2 x W and ``table`` is bins**2 x C, indexed by
    ``phase0 * bins + phase1``.
    """

    table: torch.Tensor
    y_phase: np.ndarray
    x_phase: np.ndarray

    def index(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Table indices (int64, what ``np.take`` uses without a copy) of rows ``start:stop``."""
        y_phases, x_phases = (self.y_phase, self.x_phase) if self.y_phase.ndim == 2 else ([self.y_phase], [self.x_phase])
        bins = round(self.table.shape[0] ** (1 / len(y_phases)))
        index = None
        for y_phase, x_phase in zip(y_phases, x_phases):  # mixed radix: wave 0 is the most significant digit
            digit = np.add.outer(y_phase[start:stop], x_phase).astype(np.int64)
            digit &= bins - 1  # mod bins
            if index is None:
                index = digit
            else:
                index *= bins
                index += digit
        return index

    def shifted_rows(self, max_levels: int = 256) -> "ShiftedRows | None":
        """The one-wave texture as shifted copies of a few precomputed rows, or None (two waves, or a grating
        so near horizontal that the rows would be longer than the image is large).

        Row y of a grating is row 0 moved sideways: its phase ``y_phase[y] + x_phase[x]`` equals
        ``x_phase[x + s] + rho`` for a whole shift s and a remainder rho smaller than one pixel's phase
        step. With rho rounded to one of a few levels (to within half a bin), every image row is a slice
        of a precomputed index row, so a photo needs no per-pixel index arithmetic or gather.
        """
        height, width = len(self.y_phase), len(self.x_phase)
        if self.y_phase.ndim != 1 or width < 2:
            return None
        bins = self.table.shape[0]
        x0 = float(self.x_phase[0])
        step = (float(self.x_phase[-1]) - x0) / (width - 1)  # phase per pixel along a row, in bins
        if abs(step) < 1e-3 or np.abs(self.x_phase - (x0 + step * np.arange(width))).max() > 0.05:
            return None  # stripes along the rows, or phases that do not grow linearly along a row
        levels = int(min(max_levels, max(1, math.ceil(abs(step)))))  # rho to within |step| / (2 levels) <= 0.5 bin
        y = np.mod(self.y_phase.astype(np.float64), bins)
        shift = np.floor(y / step) if step > 0 else np.ceil(y / step)
        level = np.rint((y - step * shift) / abs(step) * levels).astype(np.int64)  # 0..levels
        shift = shift.astype(np.int64)
        first = int(shift.min())
        length = int(shift.max()) - first + width
        if (levels + 1) * length * 4 > height * width:  # the rows would cost more than a quarter of the photo
            return None
        u = (np.arange(length, dtype=np.float64) + first) * step + x0
        rows = np.floor(u[None, :] + (np.arange(levels + 1) * (abs(step) / levels))[:, None]).astype(np.int64)
        rows &= bins - 1
        return ShiftedRows(rows, level, shift - first)


@dataclass
class StackedTextures:
    """Periodic textures stacked by rows (split ``halves``): ``parts[i]`` covers the rows from ``starts[i]`` to the
    next start, its ``y_phase`` those rows only."""

    starts: list[int]
    parts: list[PeriodicTexture]


@dataclass
class ShiftedRows:
    """``PeriodicTexture.index`` as slices: row y's indices are ``rows[level[y], start[y]:start[y] + width]``."""

    rows: np.ndarray  # levels x length, int64 table indices
    level: np.ndarray  # per image row
    start: np.ndarray  # per image row


class _KeyedGenerator(nn.Module):
    """Shared part: the concept keys (unit text embeddings) that conditioning embeddings snap to."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        self.register_buffer("key_embeddings", torch.zeros(config.num_keys, config.embed_dim))

    def nearest_keys(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (F.normalize(embeddings.float(), dim=-1) @ self.key_embeddings.T).argmax(1)

    # Optional capabilities; a generator that has them overrides these defaults.
    uses_pixels = True  # whether the output depends on the image's pixels, not just its size
    two_level = False  # whether forward/render take ``shared`` keys (two-level textures)
    draws_keys = False  # whether forward takes ``keys`` to draw directly (no key has an output of its own otherwise)
    has_periodic_form = False  # whether periodic_form gives every key's texture (a table lookup, no model)

    def periodic_form(self, key: int, height: int, width: int, shared: int = -1) -> "PeriodicTexture | None":
        """The key's texture as a table lookup (see ConceptTextureGenerator), or None: render it densely."""
        return None

    def texture_similarity(self) -> torch.Tensor | None:
        """K x K likeness of the keys' textures, or None when the generator cannot tell."""
        return None


@register_generator("concept-texture")
class ConceptTextureGenerator(_KeyedGenerator):
    draws_keys = True

    def __init__(self, config: GeneratorConfig):
        super().__init__(config)
        g = torch.Generator().manual_seed(config.seed)
        k, j = config.num_keys, config.components
        u = torch.rand(k, j, generator=g) * 0.96 + 0.02
        self.freq = nn.Parameter(torch.log(u / (1 - u)))  # logits: cycles spread evenly over [min, max]
        self.angle = nn.Parameter(torch.rand(k, j, generator=g) * math.pi)
        self.phase = nn.Parameter(torch.rand(k, j, generator=g) * 2 * math.pi)
        # Colour: a sign per channel, drawn from the sign patterns whose luminance is large, so the
        # grating survives grayscale conversion (PAPER.md: colour-only gratings cancel in luminance).
        # Stored as logits (tanh(3) = 0.995): full amplitude, yet trainable.
        signs = torch.tensor(LUMA_SIGNS, dtype=torch.float32)
        pick = torch.randint(len(signs), (k, j), generator=g)
        flip = torch.randint(0, 2, (k, j, 1), generator=g).float() * 2 - 1
        self.colour = nn.Parameter(3.0 * signs[pick] * flip)

    def cycles(self) -> torch.Tensor:
        """K x J frequencies in cycles per short side; with several waves, wave 0 in the band x ``coarse_factor``."""
        c = self.config
        cyc = c.min_cycles + (c.max_cycles - c.min_cycles) * torch.sigmoid(self.freq)
        if c.components > 1 and c.coarse_factor != 1.0:
            cyc = cyc * cyc.new_tensor([c.coarse_factor] + [1.0] * (c.components - 1))
        return cyc

    @property
    def two_level(self) -> bool:
        """Split and soft-colour textures (v4's halves among them) have no two-level form; see ``render``."""
        return self.config.luma_factor <= 0 and self.config.chroma_sharpness <= 0

    @property
    def layout(self) -> str:
        """The split layout drawn ("blend", "halves" or "channels"), or "" for one wave in the key's colours."""
        return self.config.split_layout if self.config.luma_factor > 0 else ""

    def small_photo_px(self) -> float:
        """The short side, in pixels, under which a photo is too small for the texture's finest wave (under
        ``split_min_px`` pixels a period); 0 when the texture has no small form. The finest wave is the grey one of
        split halves or channels (v4), or a one-wave texture's own band; other textures have no small form."""
        c = self.config
        if c.split_min_px <= 0:
            return 0.0
        if self.layout in ("halves", "channels"):
            return c.split_min_px * c.max_cycles * c.luma_factor
        if self.layout == "" and c.components == 1 and c.chroma_sharpness <= 0:
            return c.split_min_px * c.max_cycles
        return 0.0

    def small_photo(self, height: int, width: int) -> bool:
        """A photo under ``small_photo_px``: drawn as the key's colour wave over all of it at ``small_factor`` x the
        band."""
        return min(height, width) < self.small_photo_px()

    def luma_chroma_colours(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The keys' colour signs (B x 3) as a grey part (their luminance in every channel) plus the rest."""
        v = torch.tanh(self.colour[keys][:, 0])
        grey = (v @ v.new_tensor([0.299, 0.587, 0.114]))[:, None].expand_as(v)
        return grey, v - grey

    def chroma_colours(self, keys: torch.Tensor) -> torch.Tensor:
        """B x 3 zero-luminance colours of keys' waves (split textures), peak channel +-1: the key's colour signs
        less their luminance (blue-yellow for (1, 1, -1), red-cyan for (-1, 1, 1)); grey keys take magenta-green."""
        v = self.luma_chroma_colours(keys)[1]
        magenta_green = v.new_tensor([1.0, -(0.299 + 0.114) / 0.587, 1.0])
        v = torch.where((v.abs().amax(-1, keepdim=True) < 0.5), magenta_green, v)
        return v / v.abs().amax(-1, keepdim=True)

    def render(self, keys: torch.Tensor, height: int, width: int, offset: tuple[float, float] = (0.0, 0.0),
               scale: float = 1.0, shared: torch.Tensor | None = None) -> torch.Tensor:
        """Textures (B x 3 x H x W, in [-1, 1]) of ``keys`` for an image of the given size.

        Coordinates are in units of the image's short side, so a key's pattern has the same number
        of cycles across the image whatever its resolution. ``offset``/``scale`` let training render
        what a crop of a larger image would show. ``shared`` (B keys, -1 for none) makes two-level
        textures: the (square) sum of the shared key's first wave and the key's own, in the shared key's
        colours, so that groups with one shared key have half their pattern in common.
        """
        short = min(height, width)
        dev = self.freq.device
        ys = ((torch.arange(height, device=dev, dtype=torch.float32) + 0.5) / short) * scale + offset[0]
        xs = ((torch.arange(width, device=dev, dtype=torch.float32) + 0.5) / short) * scale + offset[1]

        def sine(k: torch.Tensor, factor: float = 1.0) -> torch.Tensor:  # B x J x H x W
            cyc, ang = self.cycles()[k] * factor, self.angle[k]
            fy = (2 * math.pi * cyc * torch.sin(ang))[..., None, None]  # B x J x 1 x 1
            fx = (2 * math.pi * cyc * torch.cos(ang))[..., None, None]
            # (fy*y) + (fx*x + phase): one broadcast add over the image instead of two
            return torch.sin((fy * ys.view(1, 1, -1, 1)) + (fx * xs.view(1, 1, 1, -1) + self.phase[k][..., None, None]))

        sharp = self.config.sharpness

        def one_wave(factor: float) -> tuple[torch.Tensor, torch.Tensor]:  # the key's wave and its colours
            wave = torch.tanh(sine(keys, factor).mul_(sharp))  # ~square wave in [-tanh(sharp), tanh(sharp)]
            return wave, torch.tanh(self.colour[keys]) / math.tanh(sharp)  # B x 1 x 3; peak of the wave -> 1

        two = shared is not None and bool((shared >= 0).any())
        if two and not self.two_level:
            raise ConfigError("split or soft-colour textures have no two-level form: protect without --super-groups")
        if self.config.chroma_sharpness > 0 and (self.config.components > 1 or self.config.luma_factor > 0):
            raise ConfigError("chroma_sharpness is for one-wave textures only")
        if two:  # (on a small photo both waves at small_factor x their frequency, as periodic_form draws them)
            f = self.config.small_factor if self.small_photo(height, width) else 1.0
            colour_keys = torch.where(shared >= 0, shared, keys)
            arg = sine(keys, f)[:, :1] + torch.where((shared >= 0)[:, None, None, None], sine(shared.clamp(min=0), f)[:, :1], 0.0)
            wave = torch.tanh(arg.mul_(sharp))
            colour = torch.tanh(self.colour[colour_keys][:, :1]) / math.tanh(sharp)
        elif self.small_photo(height, width):  # a small photo: the colour wave everywhere, at small_factor x the band
            wave, colour = one_wave(self.config.small_factor)
        elif self.config.luma_factor > 0 and self.config.split_layout == "halves":  # colour above, grey below
            if offset != (0.0, 0.0) or scale != 1.0:
                raise ConfigError("split halves are placed by the image's rows: render whole images, not crops")
            colour_wave = _unit_wave(sine(keys), sharp) * torch.tanh(self.colour[keys][:, 0])[..., None, None]
            grey_wave = _unit_wave(sine(keys, self.config.luma_factor), sharp)
            top = (torch.arange(height, device=dev) < height * self.config.colour_rows).view(1, 1, -1, 1)
            return torch.where(top, colour_wave, grey_wave)
        elif self.layout == "channels":  # one wave per channel group
            coarse, fine = _unit_wave(sine(keys), sharp), _unit_wave(sine(keys, self.config.luma_factor), sharp)
            return coarse * coarse.new_tensor(CHANNEL_COARSE).view(1, 3, 1, 1) + fine * fine.new_tensor(CHANNEL_FINE).view(1, 3, 1, 1)
        elif self.config.luma_factor > 0:  # split: chrominance at the band, grey at luma_factor x the band
            chroma = self.chroma_colours(keys)[..., None, None]  # B x 3 x 1 x 1
            return 0.5 * _unit_wave(sine(keys), sharp) * chroma + 0.5 * _unit_wave(sine(keys, self.config.luma_factor), sharp)
        elif self.config.components > 1:  # a plaid: the square wave of the waves' sum, in wave 0's colours
            wave = torch.tanh(sine(keys).sum(1, keepdim=True).mul_(sharp))
            colour = torch.tanh(self.colour[keys][:, :1]) / math.tanh(sharp)
        elif self.config.chroma_sharpness > 0:  # the colour's luminance in a square wave, its chrominance softer
            wave = sine(keys)
            grey, chroma = self.luma_chroma_colours(keys)
            soft = self.config.chroma_sharpness
            return _unit_wave(wave, sharp) * grey[..., None, None] + _unit_wave(wave, soft) * chroma[..., None, None]
        else:
            wave, colour = one_wave(1.0)
        return wave * colour[..., None, None].squeeze(1)

    @torch.no_grad()
    def periodic_form(self, key: int, height: int, width: int, shared: int = -1,
                      bins: int | None = None) -> "PeriodicTexture | StackedTextures | None":
        """The key's texture as a :class:`PeriodicTexture` (equal to ``render`` to 1/bins of a period).

        A single grating is a function of its phase alone (a two-level texture of its two phases), so
        `protect` renders a 12-megapixel photo with one table lookup per pixel instead of sin and tanh per
        pixel and channel (several times cheaper). A plaid of two waves is a two-level texture of the key's own
        waves; split halves are two one-wave textures stacked (:class:`StackedTextures`). None when the
        texture is not of that form (more than two waves in all, or a contrast mask that reads pixels).
        """
        if not self.has_periodic_form or (shared >= 0 and self.config.components > 1):
            return None
        split = self.config.luma_factor > 0
        if shared >= 0 and not self.two_level:
            return None
        small = self.small_photo(height, width)  # drawn as one colour wave at small_factor x the band
        split = split and not small
        if self.config.components == 2:  # (key, wave) pairs
            waves = [(key, 0), (key, 1)]
        elif split:  # the wave, then the same wave at luma_factor x its frequency
            waves = [(key, 0), (key, 0)]
        else:
            waves = [(key, 0)] if shared < 0 else [(shared, 0), (key, 0)]
        halves = split and self.config.split_layout == "halves"
        bins = bins or (4096 if len(waves) == 1 or halves else 512)
        short = min(height, width)
        cycles = self.cycles()  # once per photo, not once per wave
        y_phases, x_phases = [], []
        for i, (k, j) in enumerate(waves):
            cyc, ang, phase = (float(v[k, j]) for v in (cycles, self.angle, self.phase))
            cyc *= self.config.luma_factor if split and i == 1 else self.config.small_factor if small else 1.0
            # phase in bins: bins * (cyc * (sin(ang) * y' + cos(ang) * x') + phase / 2 pi), y' = (y + 0.5) / short
            y_phase = (np.arange(height) + 0.5) * (bins * cyc * math.sin(ang) / short)
            x_phase = (np.arange(width) + 0.5) * (bins * cyc * math.cos(ang) / short) + bins * phase / (2 * math.pi)
            y_phase -= math.floor(y_phase.min() / bins) * bins  # whole periods: non-negative, so truncation is floor
            x_phase -= math.floor(x_phase.min() / bins) * bins
            y_phases.append(y_phase.astype(np.float32))
            x_phases.append(x_phase.astype(np.float32))
        sharp = self.config.sharpness
        if halves:  # two one-wave textures: the key's colour wave on rows y < height * colour_rows (as render), grey below
            top = min(height, math.ceil(height * self.config.colour_rows))
            square = _unit_wave_table(bins, sharp)
            colour = torch.tanh(self.colour[key, 0].float().cpu())
            return StackedTextures([0, top], [PeriodicTexture(square[:, None] * colour, y_phases[0][:top], x_phases[0]),
                                              PeriodicTexture(square[:, None].repeat(1, 3), y_phases[1][top:], x_phases[1])])
        if split and self.layout == "channels":  # table[phase0 * bins + phase1]: red/blue, green
            square = _unit_wave_table(bins, sharp)
            table = square[:, None, None] * torch.tensor(CHANNEL_COARSE) + square[None, :, None] * torch.tensor(CHANNEL_FINE)
            return PeriodicTexture(table.reshape(bins * bins, 3), np.stack(y_phases), np.stack(x_phases))
        if split:  # table[phase0 * bins + phase1] = half the chroma wave at phase0 + half the grey wave at phase1
            square = _unit_wave_table(bins, sharp)
            chroma = self.chroma_colours(torch.tensor([key], device=self.colour.device))[0].float().cpu()
            table = 0.5 * (square[:, None, None] * chroma + square[None, :, None])
            return PeriodicTexture(table.reshape(bins * bins, 3), np.stack(y_phases), np.stack(x_phases))
        if self.config.chroma_sharpness > 0 and len(waves) == 1:
            soft = self.config.chroma_sharpness
            grey, chroma = (c[0].float().cpu() for c in self.luma_chroma_colours(torch.tensor([key], device=self.colour.device)))
            table = _unit_wave_table(bins, sharp)[:, None] * grey + _unit_wave_table(bins, soft)[:, None] * chroma
            return PeriodicTexture(table, y_phases[0], x_phases[0])
        wave = _square_wave_table(bins, sharp, len(waves))
        colour = torch.tanh(self.colour[waves[0][0], 0].float().cpu()) / math.tanh(sharp)
        if len(waves) == 1:
            return PeriodicTexture(wave[:, None] * colour[None, :], y_phases[0], x_phases[0])
        return PeriodicTexture(wave[:, None] * colour[None, :], np.stack(y_phases), np.stack(x_phases))

    @torch.no_grad()
    def texture_similarity(self, rel_width: float = KEY_LIKENESS_REL_WIDTH, mirror: bool = True,
                           colour: bool = True) -> torch.Tensor:
        """How alike two keys' textures look to a model that sees them at random shifts (K x K, in [0, 1]).

        Two gratings are told apart by their frequency vectors (v and -v are the same grating) and their
        colour signs (opposite colours are a half-period shift, so only |cos| counts). A thief's random
        resized crops rescale frequencies, so closeness is relative: a Gaussian in the frequency difference
        with a width of ``rel_width`` of the frequency. With ``mirror``, a grating also matches the other's
        left-right mirror image (angle pi - a): nearly every training recipe flips images at random, so a
        victim sees both and cannot tell 30 degrees from 150. Used to give the groups of one collection
        textures that differ (grouping.assign_distinct). Without ``colour``, frequencies and orientations only:
        what is left to tell keys apart once a thief's grayscale (or JPEG) took the colours.
        """
        freq = grating_frequency_likeness(self.cycles(), self.angle, rel_width, mirror)  # K x K x J x J
        # a plaid looks like another when each of its waves matches one of the other's (one wave: that wave)
        freq = freq.amax(-1).amin(-1)
        if not colour or self.layout == "channels":
            return freq  # (every key of the channels layout draws the same colours)
        col = F.normalize(torch.tanh(self.colour[:, 0]), dim=-1)  # K x 3: a plaid takes wave 0's colours
        return freq * (col @ col.T).abs()

    @property
    def uses_pixels(self) -> bool:
        """Whether the output depends on the image's pixels (only through the contrast mask), not just its size."""
        return self.config.mask_floor < 1.0

    @property
    def has_periodic_form(self) -> bool:
        return self.config.components <= 2 and not self.uses_pixels

    def forward(self, images: torch.Tensor, embeddings: torch.Tensor, shared: torch.Tensor | None = None,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        """Textures of the keys nearest ``embeddings``, or of ``keys`` (B) when given: a key's own embedding does not
        always select it, since a few ImageNet concepts share their text (two 'crane's, two 'maillot's)."""
        keys = self.nearest_keys(embeddings) if keys is None else keys
        h, w = images.shape[-2:]
        c = self.config
        texture = self.render(keys, h, w, shared=shared)
        if c.mask_floor >= 1.0:
            return texture
        return texture * contrast_mask(images, c.mask_floor, c.mask_ref, c.work_size)


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(ch),
                                  nn.ReLU(inplace=True), nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"),
                                  nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.body(x)


@register_generator("resnet")
class ResNetGenerator(_KeyedGenerator):
    """The paper's encoder-decoder at reduced width: embedding concatenated at the bottleneck."""

    def __init__(self, config: GeneratorConfig):
        super().__init__(config)
        torch.manual_seed(config.seed)
        c = config.width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c, 7, padding=3, padding_mode="reflect"), nn.InstanceNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.InstanceNorm2d(2 * c), nn.ReLU(inplace=True),
            nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.InstanceNorm2d(4 * c), nn.ReLU(inplace=True),
        )
        self.fuse = nn.Conv2d(4 * c + config.embed_dim, 4 * c, 1)
        self.blocks = nn.Sequential(*[_ResBlock(4 * c) for _ in range(config.blocks)])
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(4 * c, 2 * c, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * c, c, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, 3, 7, padding=3, padding_mode="reflect"),
        )

    def forward(self, images: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        x = resize_short(images, self.config.work_size)
        sh, sw = x.shape[-2:]
        ph, pw = (-sh) % 4, (-sw) % 4
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        f = self.encoder(x)
        e = F.normalize(embeddings.float(), dim=-1)[..., None, None].expand(-1, -1, *f.shape[-2:])
        f = self.blocks(self.fuse(torch.cat([f, e.to(f.dtype)], 1)))
        out = torch.tanh(self.decoder(f))[..., :sh, :sw]
        if (sh, sw) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
