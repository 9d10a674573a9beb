"""Protection strength: `verify` with fixed recipes over held-out datasets; prints one markdown table.

    python benchmarks/efficacy.py                         # CPU-sized: small CNN, 64 px, 20 epochs, 40 images/class
    python benchmarks/efficacy.py --datasets /path/to/any/class-folder-dataset
    python benchmarks/efficacy.py --full --device cuda    # ResNet-18 recipe, all images
    python benchmarks/efficacy.py --full --victim resnet18-w16 --device cpu  # its CPU stand-in (~8 min a victim on 2 cores)

Rows: dataset x grouping x labels x defence -> clean peak acc, protected peak acc, score. With
--defended-baselines, "clean+D" rows train on the clean copies through defence D (their "protected peak" column is
that run's peak): what D costs a thief by itself, to read each "protected+D" row against.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ucprotect.cli.verify import make_protect_fn  # noqa: E402
from ucprotect.engine import Protector, resolve_device  # noqa: E402
from ucprotect.grouping import KEY_CANDIDATES  # noqa: E402
from ucprotect.verify import PRESETS, CleanCache, cluster_count, cpu_name, verify_dataset  # noqa: E402
from ucprotect.weights import default_weights_path  # noqa: E402

EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"


def run_done_printer(epochs: int, t0: float):
    """One comment line with the curve as each victim run ends, so an invocation cut short (a GPU lease's deadline,
    a rule that stops a candidate) keeps every finished run. Returns the callback and the names it printed."""
    accs: dict[str, list[float]] = {}
    printed: set[str] = set()

    def on_progress(name: str, epoch: int, acc: float) -> None:
        accs.setdefault(name, []).append(acc)
        if epoch == epochs:
            printed.add(name)
            print(f"<!-- run {name} done at {time.perf_counter() - t0:.0f} s: peak {max(accs[name]):.3f}; "
                  f"curve {' '.join(f'{a:.2f}' for a in accs[name])} -->", flush=True)

    return on_progress, printed


def protected_id(weights: str | None, group_by: str, super_groups: int, epsilon: float = 8.0,
                 key_candidates: int = KEY_CANDIDATES) -> str:
    """What makes the protected copies: the weights' bytes, the grouping, the budget and ucprotect's source (any code
    change makes the cached undefended run stale, so it is trained again)."""
    h = hashlib.sha256()
    package = Path(__file__).resolve().parents[1] / "ucprotect"
    for path in [Path(weights) if weights else default_weights_path()] + sorted(package.rglob("*.py")):
        h.update(path.read_bytes())
    return (f"{h.hexdigest()[:16]} {group_by} {super_groups}" + (f" eps {epsilon:g}" if epsilon != 8.0 else "")
            + (f" candidates {key_candidates or 'all'}" if key_candidates != KEY_CANDIDATES else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=[str(EVAL / n) for n in ("imagenette", "caltech101", "cifar10")])
    ap.add_argument("--weights", nargs="*", default=[None], metavar="FILE",
                    help="weights files (default: the shipped one); several share one clean baseline, a row set each")
    ap.add_argument("--group-by", nargs="*", default=["folder", "none"])
    ap.add_argument("--labels", nargs="*", default=["folders", "clusters:20"])
    ap.add_argument("--rows", nargs="*", default=None, metavar="GROUPING/LABELS",
                    help="only these combinations, e.g. folder/folders folder/clusters:20 none/folders")
    ap.add_argument("--defenses", nargs="*", default=["jpeg:75", "grayscale", "blur:1.0", "downup:0.5", "heavyaug"])
    ap.add_argument("--defended-baselines", action="store_true",
                    help="also train on the clean copies through each defence ('clean+D' rows: what the defence costs the "
                         "thief by itself; cached with the clean run)")
    ap.add_argument("--victim", default=None, help="victim network instead of the recipe's (resnet18-w16: ResNet-18 at a "
                    "quarter width, the CPU stand-in measured against it in benchmarks/results, session 26)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--max-per-class", type=int, default=None,
                    help="images per class (default: 40, or all with --full)")
    ap.add_argument("--full", action="store_true", help="ResNet-18 standard recipe on all images, or --max-per-class "
                    "of them (GPU, or a CPU with AMX and --bf16)")
    ap.add_argument("--epsilon", type=float, default=8.0,
                    help="protect's L-inf budget in 0-255 units (default 8; PSNR rises 20 log10(8 / epsilon) dB)")
    ap.add_argument("--key-candidates", type=int, default=KEY_CANDIDATES,
                    help="protect's --key-candidates: a folder's key is the least alike of its N nearest concepts (0: of all)")
    ap.add_argument("--device", default="auto", help="where victims train and protect embeds")
    ap.add_argument("--protect-device", default=None, help="where protect embeds, if not --device")
    ap.add_argument("--super-groups", nargs="*", type=int, default=[0], metavar="N",
                    help="protect's --super-groups, one row each (0, the default: one-level textures)")
    ap.add_argument("--seed", type=int, default=None, help="victim init, image sample and split (default: the recipe's, 0)")
    ap.add_argument("--clean-cache", type=Path, default=None, metavar="FILE",
                    help="keep clean-baseline and undefended protected curves in this JSON file, so later invocations on "
                         "the same data, recipe, weights, code, machine, torch and device reuse them (a ResNet-18 run "
                         "is ~10 min on a 2-core CPU)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="victim precision (default: bf16 on CUDA only; --bf16 on a CPU with AMX is ~4x faster)")
    ap.add_argument("--cluster-count", choices=["silhouette", "sqrt"], default="silhouette",
                    help="--group-by cluster: protect's count (the best silhouette, since session 39), or round(sqrt n), "
                         "its rule up to session 37 (benchmarks/cluster_count.py)")
    args = ap.parse_args()
    if "cluster" in args.group_by:
        from cluster_count import use_count

        use_count(args.cluster_count)
    recipe = PRESETS["standard" if args.full else "quick"]
    recipe = replace(recipe, **{k: v for k, v in dict(victim=args.victim, epochs=args.epochs, image_size=args.image_size).items() if v})
    if args.seed is not None:
        recipe = replace(recipe, seed=args.seed)
    if args.bf16 is not None:
        recipe = replace(recipe, bf16=args.bf16)
    max_per_class = args.max_per_class if args.max_per_class is not None else (None if args.full else 40)
    protectors = {w: Protector.from_file(w, device=args.protect_device or args.device, epsilon=args.epsilon)
                  for w in args.weights}
    victim_device = resolve_device(args.device)
    gpu = f" ({torch.cuda.get_device_name(victim_device)})" if victim_device.type == "cuda" else ""
    print(f"machine: {platform.machine()} ({cpu_name()}), {torch.get_num_threads()} threads; victims on {victim_device}{gpu}, "
          f"protect embeds on {next(iter(protectors.values())).device}; "
          f"recipe: {recipe}; max/class: {max_per_class}; weights: {' '.join(w or 'shipped' for w in args.weights)}; "
          f"super-groups: {' '.join(map(str, args.super_groups))}; epsilon: {args.epsilon:g}/255; "
          f"key candidates: {args.key_candidates or 'all'}")
    print()
    print("| dataset | grouping | labels | run | clean peak | protected peak | chance | score |")
    print("|---|---|---|---|---|---|---|---|")
    # one clean baseline per dataset x labels x recipe, shared by the grouping rows (and with --clean-cache,
    # by later invocations)
    clean_cache = CleanCache(args.clean_cache, victim_device)
    if clean_cache.stale:
        print(f"<!-- {args.clean_cache}: written under {clean_cache.stale!r}, not {clean_cache.environment!r}: not used -->")
    for data, (weights, protector), group_by, labels, super_groups in itertools.product(
            args.datasets, protectors.items(), args.group_by, args.labels, args.super_groups):
        if args.rows is not None and f"{group_by}/{labels}" not in args.rows:
            continue
        classes = _class_folder_count(Path(data))
        if labels.startswith("clusters:") and cluster_count(labels) >= classes:
            print(f"<!-- {Path(data).name} {group_by} {labels}: not run, {classes} classes already fit in "
                  f"{labels}, so those labels are the folders' (see --labels folders) -->", flush=True)
            continue
        grouping = group_by if len(args.super_groups) == 1 else f"{group_by} (super-groups {super_groups})"
        if len(protectors) > 1:
            grouping += f" [{Path(weights).stem if weights else 'shipped'}]"
        if args.epsilon != 8.0:
            grouping += f" (epsilon {args.epsilon:g})"
        if args.key_candidates != KEY_CANDIDATES:
            grouping += f" (key candidates {args.key_candidates or 'all'})"
        by_sqrt = group_by == "cluster" and args.cluster_count == "sqrt"
        grouping += " (√n clusters)" if by_sqrt else ""
        first = group_by == args.group_by[0] and super_groups == args.super_groups[0]
        defenses = args.defenses if (labels == "folders" and first) else []
        t0 = time.perf_counter()
        on_progress, printed = run_done_printer(recipe.epochs, t0)
        report, _ = verify_dataset(Path(data), recipe, protect_fn=make_protect_fn(protector, group_by, super_groups, args.key_candidates),
                                   labels=labels, defenses=defenses, max_per_class=max_per_class, clean_cache=clean_cache,
                                   device=victim_device, on_progress=on_progress,
                                   protected_id=protected_id(weights, group_by, super_groups, args.epsilon, args.key_candidates)
                                   + (" count sqrt" if by_sqrt else ""),
                                   defended_baselines=args.defended_baselines)
        clean = report.run("clean").peak
        for r in report.runs[1:]:
            print(f"| {Path(data).name} | {grouping} | {labels} | {r.name} | {clean:.3f} | {r.peak:.3f} | "
                  f"{report.chance:.3f} | {report.score(r.name):.2f} |", flush=True)
        if defenses:
            worst, s = report.bottom_line()
            print(f"| {Path(data).name} | {grouping} | {labels} | **best defence: {worst}** | {clean:.3f} | "
                  f"{report.run(worst).peak:.3f} | {report.chance:.3f} | **{s:.2f}** |", flush=True)
        for r in report.runs:  # when the peak happens tells whether the shortcut is learned late
            if r.name not in printed:  # runs taken from the clean cache
                print(f"<!-- curve {r.name}: {' '.join(f'{a:.2f}' for a in r.accuracy)} -->")
        print(f"<!-- {Path(data).name} {grouping} {labels}: {time.perf_counter() - t0:.0f} s, "
              f"{report.train_images} train / {report.test_images} test images -->", flush=True)


def _class_folder_count(data: Path) -> int:
    """Class folders under ``data`` (an upper bound on verify's classes, which need images)."""
    return sum(1 for d in data.iterdir() if d.is_dir() and not d.name.startswith(".")) if data.is_dir() else 0


if __name__ == "__main__":
    main()
