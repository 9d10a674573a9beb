"""Option types shared by several commands, so their signatures read like documentation."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
EpsilonOpt = Annotated[float, typer.Option("--epsilon", help="L-inf budget in 0-255 pixel units (protected 8-bit images change by whole steps: 4.5 acts as 4).")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", help="Generator .safetensors file (default: the shipped one).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per model batch.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write a JSON report to this file.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
