"""Which concept key each class folder draws on a seed's train split, and its grating frequency.

    python benchmarks/folder_keys.py --datasets ../shared/data/eval/imagenette --seeds 0 1 --weights v2.safetensors band-8-16.safetensors

``efficacy.py --seed S`` protects only the seed's train split (80 %), so the folders' mean embeddings and hence
their keys can move with the seed; this prints them (``protect --keys-only``, nothing is written but links),
to tell a victim's seed-to-seed spread from the key draw's. The last columns are how alike the drawn textures
are (``texture_similarity``, max and mean over pairs of folders), as key choice sees them and with their colours
left out (frequency and orientation only: what is left to tell them apart if a thief's JPEG or grayscale took
the colours).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ucprotect.engine import Protector, ProtectOptions, protect_folder  # noqa: E402
from ucprotect.grouping import KEY_CANDIDATES  # noqa: E402
from ucprotect.verify import link_split, load_class_folders, stratified_split  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", type=Path, required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--weights", nargs="+", default=[None], help="weights files (default: the shipped one)")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="as verify's split (default 0.2)")
    ap.add_argument("--key-candidates", type=int, default=KEY_CANDIDATES, help="protect's --key-candidates (0: all concepts)")
    args = ap.parse_args()
    protectors = {w: Protector.from_file(w, device="cpu") for w in args.weights}
    # per weights file: cycles, and the key likeness with and without colours (K x K, the same for every seed)
    tables = {w: (p.cpu_generator.cycles().detach(), p.cpu_generator.texture_similarity().detach(),
                  p.cpu_generator.texture_similarity(colour=False).detach(),
                  torch.rad2deg(p.cpu_generator.angle.detach().remainder(torch.pi))) for w, p in protectors.items()}
    print("| dataset | seed | weights | folder: key (cycles per short side, orientation in degrees from the rows) "
          "| likeness max / mean | without colour |")
    print("|---|---|---|---|---|---|")
    for data in args.datasets:
        for seed in args.seeds:
            ds = load_class_folders(data, None, seed)
            train_idx, _ = stratified_split(ds.labels, args.test_fraction, seed)
            with tempfile.TemporaryDirectory() as tmp:
                src = link_split([ds.paths[i] for i in train_idx], ds.root, Path(tmp) / "train-split")
                for n, (w, protector) in enumerate(protectors.items()):
                    opts = ProtectOptions(group_by="folder", keys_only=True, key_candidates=args.key_candidates)
                    result = protect_folder(src, Path(tmp) / f"out{n}", protector, opts)
                    cycles, likeness, likeness_bare, angle = tables[w]
                    keys = sorted({(r.group, r.key) for r in result.rows if r.key >= 0})
                    cells = ", ".join(f"{g}: {k} ({float(cycles[k, 0]):.1f}, {float(angle[k, 0]):.0f})" for g, k in keys)
                    idx = torch.tensor(sorted({k for _, k in keys}))
                    pairs = ~torch.eye(len(idx), dtype=torch.bool)
                    full, bare = likeness[idx][:, idx][pairs], likeness_bare[idx][:, idx][pairs]
                    print(f"| {data.name} | {seed} | {Path(w).stem if w else 'shipped'} | {cells} | "
                          f"{float(full.max()):.2f} / {float(full.mean()):.3f} | {float(bare.max()):.2f} / {float(bare.mean()):.3f} |", flush=True)


if __name__ == "__main__":
    main()
