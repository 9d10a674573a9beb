"""Option types shared by several commands, so their signatures read like documentation."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ConfigError

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
EpsilonOpt = Annotated[float, typer.Option("--epsilon", help="L-inf budget in 0-255 pixel units (protected 8-bit images change by whole steps: 4.5 acts as 4).")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="Generator .safetensors file (default: the shipped one).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per model batch.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write a JSON report to this file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]


_EXAMPLE_NAMES = {"--report": "report.json", "--plot": "plot.png", "--export": "weights.safetensors", "--keys": "keys.json"}


def check_output_file(path: Optional[Path], option: str) -> None:
    """Refuse, before any work, a file option (``--report``, ``--plot``, ``--export``, ``--keys``) that could not be written:
    a folder in its place or a folder that cannot be made or written. A missing folder is made, as ``--out`` is."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name, e.g. {path / _EXAMPLE_NAMES.get(option, 'out')}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot make its folder ({e.strerror or e}); choose a writable place") from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"{option} {path}: {path.parent} is not writable; choose a writable place")
