"""Speed and memory of `protect` against the floor of merely decoding and re-encoding the same files.

    python benchmarks/protect_speed.py [--device cpu] [--batch-size 16]

Each measurement runs in a fresh subprocess (model loading excluded from the protect timing, reported
separately); peak memory is that subprocess's max RSS. Floor and protect runs alternate ``--repeats``
times and the medians are reported (a shared VM's timings vary by +-15 % from run to run).
Ratio = median protect time / median floor time.
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
import json, resource, sys, time
from ucprotect import Protector, ProtectOptions, protect_folder
t = time.perf_counter()
p = Protector.from_file(None, device=sys.argv[3])
load = time.perf_counter() - t
t = time.perf_counter()
r = protect_folder(sys.argv[1], sys.argv[2], p, ProtectOptions(batch_size=int(sys.argv[4]), workers=int(sys.argv[5])))
assert r.failed == 0, [x.reason for x in r.rows if x.status == "failed"]
print(json.dumps({"seconds": time.perf_counter() - t, "load_seconds": load, "n": r.count("done"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **r.quality()}))
"""


def run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
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
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ucprotect-speed-"))
    small = tmp / "small224"
    for i, p in enumerate(sorted((SHARED / "eval" / "imagenette").rglob("*.JPEG"))[: args.small_count] or
                          sorted((SHARED / "eval" / "imagenette").rglob("*.*"))[: args.small_count]):
        (small / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, small / p.parent.name / p.name)
    sets = {"camera photos (shared/data/photos)": SHARED / "photos", f"224 px images ({args.small_count})": small}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; device {args.device}; batch {args.batch_size}; "
          f"workers {args.workers}; median of {args.repeats} runs")
    print()
    print("| set | images | floor s | protect s | ratio | images/s | peak RSS MB (protect) | model load s | mean PSNR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, src in sets.items():
        floors, prots = [], []
        for r in range(args.repeats):
            floors.append(run(FLOOR, str(src), str(tmp / f"floor{r}" / src.name)))
            prots.append(run(PROTECT, str(src), str(tmp / f"prot{r}" / src.name), args.device, str(args.batch_size),
                             str(args.workers)))
        floor = {"seconds": statistics.median(f["seconds"] for f in floors)}
        prot = {**prots[0], "seconds": statistics.median(p["seconds"] for p in prots),
                "rss_mb": max(p["rss_mb"] for p in prots)}
        print(f"| {name} | {prot['n']} | {floor['seconds']:.1f} | {prot['seconds']:.1f} | {prot['seconds'] / floor['seconds']:.2f} | "
              f"{prot['n'] / prot['seconds']:.2f} | {prot['rss_mb']:.0f} | {prot['load_seconds']:.1f} | {prot['mean_psnr']:.2f} |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
