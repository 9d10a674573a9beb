"""``ucprotect protect``: protect a photo or a folder tree into a mirror folder."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..imageio import DEFAULT_MAX_PIXELS
from ._errors import exit_code_for, handle_errors
from ._options import BatchOpt, DeviceOpt, EpsilonOpt, ReportOpt, WeightsOpt, check_output_file

EPILOG = """Examples:\n\n
  ucprotect protect ./photos --out ./safe\n\n
  ucprotect protect ./photos --out ./safe --group-by none --format png --metadata strip\n\n
  ucprotect protect ./photos --out ./safe --keys-only   # once, before sharding\n\n
  ucprotect protect ./photos --out ./safe --shard 3/8   # one of 8 machines"""


@handle_errors
def protect(
    src: Annotated[Path, typer.Argument(help="A photo or a folder of photos (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (mirrors SRC's tree).")],
    weights: WeightsOpt = None,
    epsilon: EpsilonOpt = 8.0,
    group_by: Annotated[str, typer.Option(help="auto, folder, cluster or none: which photos share a pattern.")] = "auto",
    clusters: Annotated[Optional[int], typer.Option(help="Number of clusters for --group-by cluster (default: the count that separates the photos best, by silhouette).")] = None,
    super_groups: Annotated[int, typer.Option(help="Gather similar folders/clusters into N super-groups that share half their pattern, for someone who sorts more coarsely than your groups (e.g. ~sqrt of the number of folders; 0: none). Costs protection against sorting by your groups. Needs weights that draw two-level textures (the default v5 and v3 do; v4 does not).")] = 0,
    key_candidates: Annotated[int, typer.Option(min=0, help="Each new folder/cluster takes, of the N concepts nearest its photos, the one whose pattern is least like those already given out (0: of all concepts, the most distinct patterns).")] = 16,
    format: Annotated[Optional[str], typer.Option("--format", help="Force png, jpeg or webp output.")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality.")] = 95,
    metadata: Annotated[str, typer.Option(help="safe (drop GPS and thumbnail), keep, or strip.")] = "safe",
    device: DeviceOpt = "auto",
    batch_size: BatchOpt = 16,
    workers: Annotated[Optional[int], typer.Option(help="Threads that decode, embed (on CPU) and encode (default: one per core, at most 8).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Redo outputs that already exist.")] = False,
    dry_run: Annotated[bool, typer.Option(help="List what would be done; write nothing.")] = False,
    shard: Annotated[Optional[str], typer.Option(help="K/N: process the K-th of N deterministic parts.")] = None,
    keys: Annotated[Optional[Path], typer.Option("--keys", help="Keys file: the pattern each folder/cluster got, reused by later runs (default OUT/.ucprotect-keys.json).")] = None,
    keys_only: Annotated[bool, typer.Option(help="Choose and record the keys of every folder, protect nothing (run once before --shard jobs).")] = False,
    max_pixels: Annotated[int, typer.Option(help="Refuse larger images (decompression-bomb guard).")] = DEFAULT_MAX_PIXELS,
    fail_fast: Annotated[bool, typer.Option(help="Stop at the first failed image.")] = False,
    report: ReportOpt = None,
    tta: Annotated[bool, typer.Option(help="Average each photo's concept embedding over a mirrored copy (cluster and none grouping; a folder's mean needs none).")] = True,
):
    """Protect photos: add the generator's imperceptible perturbation at native resolution."""
    from ..engine import ImageRow, ProtectOptions, Protector, default_workers, parse_shard, protect_folder  # torch: at run time, not for --help
    console = Console(stderr=True, emoji=False)
    check_output_file(report, "--report")  # now, not after the run
    check_output_file(keys, "--keys")
    options = ProtectOptions(format=format, quality=quality, metadata=metadata, overwrite=overwrite, dry_run=dry_run,
                             shard=parse_shard(shard) if shard else None, group_by=group_by, clusters=clusters,
                             super_groups=super_groups, key_candidates=key_candidates,
                             max_pixels=max_pixels, fail_fast=fail_fast, batch_size=batch_size, workers=workers or default_workers(),
                             keys_file=keys, keys_only=keys_only)
    protector = None if dry_run else Protector.from_file(weights, device=device, epsilon=epsilon, tta=tta)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, int] = {}

        def on_event(kind: str, payload) -> None:
            if kind == "start_embedding":
                tasks["embed"] = progress.add_task("embedding", total=payload, rate="")
            elif kind == "embedded":
                progress.update(tasks["embed"], advance=1)
            elif kind == "total":
                tasks["total"] = payload
            elif kind == "image":
                row: ImageRow = payload
                if "protect" not in tasks:
                    tasks["protect"] = progress.add_task("protecting", total=tasks.get("total"), rate="")
                task = progress.tasks[tasks["protect"]]
                elapsed = task.elapsed or 1e-9
                progress.update(tasks["protect"], advance=1, rate=f"{(task.completed + 1) / elapsed:.2f} img/s")
                if row.status == "failed":
                    progress.console.print(f"[red]failed[/] {escape(row.reason)}", highlight=False)

        if protector is None:
            result = protect_folder(src, out, _DryRunProtector(), options, on_event)
        else:
            result = protect_folder(src, out, protector, options, on_event)
    _print_summary(console, result, dry_run)
    if report:
        result.write_report(report)
        console.print(f"report: {report}", markup=False)
    exit_code_for(result.failed)


class _DryRunProtector:
    """Stands in for the model in --dry-run, which never reaches model code."""


def _print_summary(console: Console, result, dry_run: bool) -> None:
    if dry_run:
        for r in result.rows:
            console.print(f"{r.status:8} {r.input} -> {r.output}" + (f"  ({r.reason})" if r.reason else ""), highlight=False, markup=False)
    s = result.summary()
    table = Table(title="ucprotect protect", show_header=False)
    for key in ("done", "skipped", "failed") + (("planned",) if dry_run else ()):
        table.add_row(key, str(s[key]))
    table.add_row("grouping", s["group_by"])
    if s["keys_file"]:
        table.add_row("patterns", f"{s['groups_recorded']} from the keys file, {s['groups_new']} new ({escape(str(s['keys_file']))})")
    if s["mean_psnr"] is not None:
        table.add_row("PSNR mean / worst", f"{s['mean_psnr']:.2f} / {s['worst_psnr']:.2f} dB")
        table.add_row("SSIM mean / worst", f"{s['mean_ssim']:.4f} / {s['worst_ssim']:.4f}")
    if result.left_out:
        table.add_row("other files", f"{sum(result.left_out.values())} not read, left as they are "
                                     f"({escape(_by_extension(result.left_out))})")
    table.add_row("time", f"{s['seconds']:.1f} s")
    console.print(table)
    photos = result.photos_left_out
    if photos:
        n = sum(photos.values())
        subject, was, them = ("1 photo", "was NOT", "it") if n == 1 else (f"{n} photos", "were NOT", "them")
        verb = "will not be" if dry_run else was
        console.print(f"[bold yellow]warning:[/] {subject} {verb} protected ({escape(_by_extension(photos))}): "
                      f"ucprotect reads JPEG, PNG, WebP, TIFF and BMP only. Convert {them} (e.g. to JPEG) and run "
                      f"again before you publish {them}.", highlight=False)


def _by_extension(counts: dict[str, int]) -> str:
    return ", ".join(f"{ext} {n}" for ext, n in counts.items())
