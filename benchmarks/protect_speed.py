"""Speed and memory of `protect` against the floor of merely decoding and re-encoding the same files.

    python benchmarks/protect_speed.py [--device cpu] [--batch-size 16]
    python benchmarks/protect_speed.py --device cuda --batch-size 256 --workers 16 --embed-batches 64 256 1024 4096
    python benchmarks/protect_speed.py --weights weights/ucprotect-conse-v3.safetensors   # another weights file

Each measurement runs in a fresh subprocess (model loading excluded from the protect timing, reported
separately); peak memory is that subprocess's max RSS. Floor and protect runs alternate ``--repeats``
times and the medians are reported (a shared VM's timings vary by +-15 % from run to run).
Ratio = median protect time / median floor time. ``--embed-batches`` also times the model part alone
(the concept embedding of 224 px images, mirror TTA included) at each batch size, up to the largest that fits.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

FLOOR = r"""
import json, resource, sys, time
from pathlib import Path
from ucprotect import imageio
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
for p in imageio.find_images(src)[0]:
    photo = imageio.load_photo(p)
    imageio.save_photo(photo, photo.pixels, dst / p.relative_to(src), quality=95, metadata="safe")
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PROTECT = r"""
import json, resource, shutil, sys, tempfile, time
from pathlib import Path
from ucprotect import Protector, ProtectOptions, protect_folder
t = time.perf_counter()
p = Protector.from_file(sys.argv[7] or None, device=sys.argv[3])
opts = ProtectOptions(batch_size=int(sys.argv[4]), workers=int(sys.argv[5]))
if int(sys.argv[6]):  # warm-up: a GPU's context and kernel choice happen at first use, once per process
    scratch = Path(tempfile.mkdtemp())
    for f in sorted(Path(sys.argv[1]).rglob("*.*"))[: int(sys.argv[6])]:
        shutil.copy(f, scratch / f.name)
    protect_folder(scratch, scratch.with_name(scratch.name + "-out"), p, opts)
load = time.perf_counter() - t
marks = {}
t = time.perf_counter()
r = protect_folder(sys.argv[1], sys.argv[2], p, opts, on_event=lambda kind, _: marks.__setitem__(kind, time.perf_counter()))
assert r.failed == 0, [x.reason for x in r.rows if x.status == "failed"]
print(json.dumps({"seconds": time.perf_counter() - t, "load_seconds": load, "n": r.count("done"),
                  "embed_seconds": marks["embedded"] - marks["start_embedding"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **r.quality()}))
"""

EMBED = r"""
import json, sys, time
import numpy as np, torch
from PIL import Image
from ucprotect import Protector
p = Protector.from_file(None, device=sys.argv[1])
cuda = p.device.type == "cuda"
rng = np.random.default_rng(0)
rows = []
for b in map(int, sys.argv[2:]):
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(b)]
    try:
        p.embed(images)  # warm-up (cuDNN picks its kernels)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t, n = time.perf_counter(), 0
        while n == 0 or time.perf_counter() - t < 3:
            p.embed(images)
            n += b
        seconds = time.perf_counter() - t
    except torch.cuda.OutOfMemoryError:
        rows.append({"batch": b, "images_per_s": None, "peak_mb": None})
        break
    rows.append({"batch": b, "images_per_s": n / seconds,
                 "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None})
print(json.dumps({"rows": rows, "device": torch.cuda.get_device_name() if cuda else "cpu"}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--weights", default="", help="generator weights file (default: the shipped one)")
    ap.add_argument("--warmup", type=int, default=0, metavar="N",
                    help="protect N images of the set first, untimed (counted with model load; for GPUs)")
    ap.add_argument("--data", type=Path, default=SHARED, help="the shared data folder (photos/, eval/imagenette/)")
    ap.add_argument("--no-photos", action="store_true", help="only the 224 px set (e.g. where photos/ is not at hand)")
    ap.add_argument("--embed-batches", nargs="*", type=int, default=[], metavar="B",
                    help="also time the concept embedding alone at these batch sizes (GPU: the largest that fits)")
    args = ap.parse_args()
    shared = args.data
    tmp = Path(tempfile.mkdtemp(prefix="ucprotect-speed-"))
    small = tmp / "small224"
    for i, p in enumerate(sorted((shared / "eval" / "imagenette").rglob("*.JPEG"))[: args.small_count] or
                          sorted((shared / "eval" / "imagenette").rglob("*.*"))[: args.small_count]):
        (small / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, small / p.parent.name / p.name)
    sets = {"camera photos (shared/data/photos)": shared / "photos", f"224 px images ({args.small_count})": small}
    if args.no_photos:
        del sets["camera photos (shared/data/photos)"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; device {args.device}; batch {args.batch_size}; "
          f"workers {args.workers}; median of {args.repeats} runs; weights {args.weights or 'shipped'}" + (f"; warm-up {args.warmup} images" if args.warmup else ""))
    print()
    print("| set | images | floor s | protect s | of which pass 1 (embed) s | ratio | images/s | peak RSS MB (protect) | "
          "model load s | mean PSNR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, src in sets.items():
        floors, prots = [], []
        for r in range(args.repeats):
            floors.append(run(FLOOR, str(src), str(tmp / f"floor{r}" / src.name)))
            prots.append(run(PROTECT, str(src), str(tmp / f"prot{r}" / src.name), args.device, str(args.batch_size),
                             str(args.workers), str(args.warmup), args.weights))
        floor = {"seconds": statistics.median(f["seconds"] for f in floors)}
        prot = {**prots[0], "seconds": statistics.median(p["seconds"] for p in prots),
                "embed_seconds": statistics.median(p["embed_seconds"] for p in prots),
                "rss_mb": max(p["rss_mb"] for p in prots)}
        print(f"| {name} | {prot['n']} | {floor['seconds']:.1f} | {prot['seconds']:.1f} | {prot['embed_seconds']:.1f} | "
              f"{prot['seconds'] / floor['seconds']:.2f} | "
              f"{prot['n'] / prot['seconds']:.2f} | {prot['rss_mb']:.0f} | {prot['load_seconds']:.1f} | {prot['mean_psnr']:.2f} |")
    shutil.rmtree(tmp, ignore_errors=True)
    if args.embed_batches:
        result = run(EMBED, args.device, *map(str, args.embed_batches))
        print()
        print(f"Concept embedding alone (224 px, mirror TTA, model part of protect) on {result['device']}:")
        print()
        print("| batch | images/s | peak GPU memory MB |")
        print("|---|---|---|")
        for r in result["rows"]:
            ips = "out of memory" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
            peak = "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
            print(f"| {r['batch']} | {ips} | {peak} |")


if __name__ == "__main__":
    main()
