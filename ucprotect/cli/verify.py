"""``ucprotect verify``: a real victim training run on clean vs protected copies of a dataset."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._errors import handle_errors
from ._options import DeviceOpt, EpsilonOpt, ReportOpt, SeedOpt, WeightsOpt, check_output_file

if TYPE_CHECKING:
    from ..engine import Protector

EPILOG = """Examples:\n\n
  ucprotect verify ./dataset --quick\n\n
  ucprotect verify ./dataset --labels clusters:20 --defense all --report v.json --plot v.png\n\n
  ucprotect verify ./dataset --protected ./safe --paper --device cuda"""


def make_protect_fn(protector: Protector, group_by: str, super_groups: int = 0,
                    key_candidates: int = 16):  # grouping.KEY_CANDIDATES, written out: importing it would load torch for --help
    """Protect the train split as a user would: a copy of the class-folder tree through protect_folder."""
    from ..engine import ProtectOptions, protect_folder
    from ..verify import link_split

    def protect_fn(paths: list[Path], out_dir: Path) -> dict[Path, Path]:
        import os

        root = Path(os.path.commonpath([str(p.parent.parent) for p in paths]))
        src = link_split(paths, root, out_dir / "train-split")  # only the train split is protected
        dst = out_dir / "protected"
        opts = ProtectOptions(group_by=group_by, format="png", super_groups=super_groups, key_candidates=key_candidates)
        result = protect_folder(src, dst, protector, opts)
        if result.failed:
            bad = next(r for r in result.rows if r.status == "failed")
            raise typer.BadParameter(f"protecting the train split failed: {bad.reason}")
        return {p: (dst / p.relative_to(root)).with_suffix(".png") for p in paths}

    return protect_fn


@handle_errors
def verify(
    data_dir: Annotated[Path, typer.Argument(help="Class-folder dataset: DATA_DIR/<class>/<images>.")],
    weights: WeightsOpt = None,
    protected: Annotated[Optional[Path], typer.Option(help="Already protected copy of DATA_DIR (same relative paths).")] = None,
    group_by: Annotated[str, typer.Option(help="Grouping used when protecting the train split.")] = "folder",
    labels: Annotated[str, typer.Option(help="folders, or clusters:N (label-agnostic).")] = "folders",
    defense: Annotated[list[str], typer.Option("--defense", help="jpeg[:Q[:444]], grayscale, blur[:S], downup[:F], heavyaug, mixup, all.")] = [],
    defended_baselines: Annotated[bool, typer.Option(
        "--defended-baselines", help="Also train on the clean copies through each --defense: what the defence costs "
                                     "a thief by itself, beside what it leaves of the protection.")] = False,
    victim: Annotated[Optional[str], typer.Option(
        help="resnet18, resnet18-w16 (ResNet-18 at a quarter width: a CPU stand-in), mobilenetv2, vit-tiny or small-cnn.")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Victim input size.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Victim batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Victim learning rate.")] = None,
    quick: Annotated[bool, typer.Option(help="CPU preset: small CNN, 64 px, 20 epochs, 40 images per class.")] = False,
    paper: Annotated[bool, typer.Option(help="The paper's recipe: ResNet-18, 224 px, 200 epochs (GPU).")] = False,
    test_fraction: Annotated[float, typer.Option(help="Share of each class held out as clean test images.")] = 0.2,
    max_per_class: Annotated[Optional[int], typer.Option(help="Use at most this many images per class.")] = None,
    epsilon: EpsilonOpt = 8.0,
    device: DeviceOpt = "auto",
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--fp32", help="Victim precision (default: bf16 on CUDA, fp32 elsewhere; "
                                                 "--bf16 on a CPU with AMX, e.g. Xeon Sapphire Rapids, is ~4x faster).")] = None,
    seed: SeedOpt = 0,
    report: ReportOpt = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write accuracy curves and a sample strip to this PNG.")] = None,
    clean_cache: Annotated[Optional[Path], typer.Option(
        "--clean-cache", help="Keep the clean run's curve in this JSON file: later runs on the same data, recipe, "
                              "machine and device reuse it instead of training it again.")] = None,
):
    """Train a victim on clean and on protected copies; report accuracy on clean test images."""
    from ..engine import Protector, resolve_device  # torch: at run time, not for --help
    from ..verify import PRESETS, CleanCache, parse_defenses, verify_dataset, write_report_files
    console = Console(stderr=True, emoji=False)
    check_output_file(report, "--report")  # now, not after an hour of training
    check_output_file(plot, "--plot")
    recipe = PRESETS["paper" if paper else "quick" if quick else "standard"]
    overrides = dict(victim=victim, image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, bf16=bf16)
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if quick and max_per_class is None:
        max_per_class = 40
    protect_fn = None
    if protected is None:
        protect_fn = make_protect_fn(Protector.from_file(weights, device=device, epsilon=epsilon), group_by)

    cache = None
    if clean_cache is not None:
        cache = CleanCache(clean_cache, resolve_device(device))
        if cache.stale:
            console.print(f"{clean_cache}: its clean runs were measured under {cache.stale}, not {cache.environment}; "
                          f"training the clean run again (the file then holds this one instead)", highlight=False, markup=False)

    def on_progress(name: str, epoch: int, acc: float) -> None:
        console.print(f"{name:24} epoch {epoch:3}/{recipe.epochs}  clean-test acc {acc:.3f}", highlight=False)

    result, samples = verify_dataset(data_dir, recipe, protect_fn=protect_fn, protected_dir=protected, labels=labels,
                                     defenses=parse_defenses(defense), test_fraction=test_fraction,
                                     max_per_class=max_per_class, on_progress=on_progress, device=resolve_device(device),
                                     clean_cache=cache, defended_baselines=defended_baselines)
    for reason in result.skipped:
        console.print(f"skipped {reason}", highlight=False, markup=False, emoji=False)
    table = Table(title=f"ucprotect verify: {escape(str(data_dir))} ({labels}, {result.num_classes} classes, "
                        f"victim {recipe.victim} {recipe.image_size}px {recipe.epochs} ep)")
    for col in ("run", "final acc", "peak acc", "chance", "score"):
        table.add_column(col)
    for row in result.rows():
        score = ("" if row["run"] == "clean" else "–") if row["score"] is None else f"{row['score']:.2f}"
        table.add_row(row["run"], f"{row['final']:.3f}", f"{row['peak']:.3f}", f"{result.chance:.3f}", score)
    out = Console(emoji=False)
    out.print(table)
    out.print(result.verdict(), markup=False)
    write_report_files(result, samples, report, plot)
