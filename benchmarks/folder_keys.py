"""Which concept key each class folder draws on a seed's train split, and its grating frequency.

    python benchmarks/folder_keys.py --datasets ../shared/data/eval/imagenette --seeds 0 1 --weights v2.safetensors band-8-16.safetensors

``efficacy.py --seed S`` protects only the seed's train split (80 %), so the folders' mean embeddings and hence
their keys can move with the seed; this prints them (``protect --keys-only``, nothing is written but links),
to tell a victim's seed-to-seed spread from the key draw's.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucprotect.engine import Protector, ProtectOptions, protect_folder  # noqa: E402
from ucprotect.verify import link_split, load_class_folders, stratified_split  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", type=Path, required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--weights", nargs="+", default=[None], help="weights files (default: the shipped one)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="as verify's split (default 0.2)")
    args = ap.parse_args()
    protectors = {w: Protector.from_file(w, device="cpu") for w in args.weights}
    print("| dataset | seed | weights | folder: key (cycles per short side) |")
    print("|---|---|---|---|")
    for data in args.datasets:
        for seed in args.seeds:
            ds = load_class_folders(data, None, seed)
            train_idx, _ = stratified_split(ds.labels, args.test_fraction, seed)
            with tempfile.TemporaryDirectory() as tmp:
                src = link_split([ds.paths[i] for i in train_idx], ds.root, Path(tmp) / "train-split")
                for n, (w, protector) in enumerate(protectors.items()):
                    result = protect_folder(src, Path(tmp) / f"out{n}", protector, ProtectOptions(group_by="folder", keys_only=True))
                    cycles = protector.cpu_generator.cycles().detach()[:, 0]
                    keys = sorted({(r.group, r.key) for r in result.rows if r.key >= 0})
                    cells = ", ".join(f"{g}: {k} ({float(cycles[k]):.1f})" for g, k in keys)
                    print(f"| {data.name} | {seed} | {Path(w).stem if w else 'shipped'} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
