"""Do two weights files write the same files? Protect a sample of each dataset with both and compare bytes.

    python benchmarks/same_pixels.py weights/ucprotect-conse-v4.safetensors weights/ucprotect-conse-v3.safetensors \
        --datasets ../shared/data/eval/cifar10 ../shared/data/eval/imagenette

When two files draw the same pixels on a set (v4 draws photos under 96 px as v3 does), the victim rows measured
with one hold for the other there without new victim runs: training is deterministic given the same bytes.
Prints, per dataset, whether the folder keys agree and how many outputs are byte-identical.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect import Protector, ProtectOptions, protect_folder  # noqa: E402


def sample(dataset: Path, classes: int, per_class: int, into: Path) -> Path:
    """The first ``per_class`` files of the first ``classes`` class folders, copied under ``into``."""
    for folder in [d for d in sorted(dataset.iterdir()) if d.is_dir()][:classes]:
        (into / folder.name).mkdir(parents=True)
        for f in sorted(p for p in folder.iterdir() if p.is_file())[:per_class]:
            shutil.copy(f, into / folder.name / f.name)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("first", type=Path)
    ap.add_argument("second", type=Path)
    ap.add_argument("--datasets", nargs="+", type=Path, required=True)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=15)
    args = ap.parse_args()
    protectors = [Protector.from_file(w, device="cpu") for w in (args.first, args.second)]
    print(f"| dataset | photos | folder keys equal | byte-identical outputs ({args.first.name} vs {args.second.name}) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            src = sample(dataset, args.classes, args.per_class, Path(tmp) / dataset.name / "in")
            results = [protect_folder(src, Path(tmp) / dataset.name / f"out{i}", p, ProtectOptions(group_by="folder"))
                       for i, p in enumerate(protectors)]
            hashes = [{row.input: row.output_sha256 for row in r.rows} for r in results]
            keys = [[row.key for row in r.rows] for r in results]
            same = sum(hashes[0][name] == hashes[1].get(name) for name in hashes[0])
            print(f"| {dataset.name} | {len(hashes[0])} | {'yes' if keys[0] == keys[1] else 'no'} | {same} of {len(hashes[0])} |")


if __name__ == "__main__":
    main()
