"""``ucprotect train``: (re)train the universal generator on a folder of images."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ._errors import handle_errors
from ._options import BatchOpt, DeviceOpt, EpsilonOpt, SeedOpt, check_output_file

EPILOG = """Examples:\n\n
  ucprotect train ../shared/data/train --out runs/v2 --export weights/mine.safetensors\n\n
  ucprotect train ./my_images --objective paper --steps 2000 --device cuda\n\n
  ucprotect train ./my_images --out runs/mine --resume    # continue from runs/mine/checkpoint.pt"""


@handle_errors
def train(
    data_dir: Annotated[Path, typer.Argument(help="Folder of training images (labels are not used).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints and embedding cache.")] = Path("runs/train"),
    export: Annotated[Optional[Path], typer.Option(help="Write the final weights file here.")] = None,
    backbone: Annotated[str, typer.Option(help="conse (offline) or clip[:name-or-path].")] = "conse",
    objective: Annotated[str, typer.Option(help="shortcut (default) or paper.")] = "shortcut",
    arch: Annotated[str, typer.Option(help="Generator architecture: concept-texture or resnet.")] = "concept-texture",
    steps: Annotated[int, typer.Option(help="Optimisation steps.")] = 300,
    batch_size: BatchOpt = 64,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 0.01,
    epsilon: EpsilonOpt = 8.0,
    image_size: Annotated[int, typer.Option(help="Training resolution.")] = 96,
    coarse_groups: Annotated[int, typer.Option(help="Concept groups that single photos are keyed by.")] = 64,
    min_cycles: Annotated[float, typer.Option(help="concept-texture: lowest grating frequency, cycles per short side.")] = 4.0,
    max_cycles: Annotated[float, typer.Option(help="concept-texture: highest grating frequency.")] = 8.0,
    max_images: Annotated[Optional[int], typer.Option(help="Use at most this many images.")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 100,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
):
    """Train the universal generator; --export writes the weights file that 'protect' loads."""
    from ..training import TrainConfig, Trainer  # torch: at run time, not for --help
    console = Console(stderr=True, emoji=False)
    check_output_file(export, "--export")  # now, not after training
    config = TrainConfig(backbone=backbone, arch=arch, objective=objective, steps=steps, batch_size=batch_size, lr=lr,
                         epsilon=epsilon, image_size=image_size, coarse_groups=coarse_groups, min_cycles=min_cycles,
                         max_cycles=max_cycles, seed=seed,
                         max_images=max_images, checkpoint_every=checkpoint_every)
    trainer = Trainer(data_dir, out, config, device=device, log=console.print)
    if resume:
        trainer.load_checkpoint(trainer.checkpoint_path())
        console.print(f"resumed at step {trainer.step}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        n = trainer.prepare_data()
        progress.console.print(f"{n} training images from {data_dir}", markup=False)
        task = progress.add_task("training", total=config.steps, completed=trainer.step, info="")

        def on_step(row: dict) -> None:
            info = " ".join(f"{k}={v:.3f}" for k, v in row.items() if k != "step")
            progress.update(task, completed=row["step"], info=info)

        trainer.run(on_step)
    console.print(f"checkpoint: {trainer.checkpoint_path()}", markup=False)
    if export:
        trainer.export(export)
        console.print(f"weights: {export}", markup=False)
