"""Mean ± sd over seeds of the scores in efficacy.py outputs: one table, a row per layout, a column per run.

    python benchmarks/seed_table.py out/a-s0.md out/a-s1.md out/a-s2.md out/b-s*.md

Each file holds one or more efficacy.py invocations (one seed each); rows are read from its markdown table, so runs a deadline cut
before their row printed are not counted (the "seeds" column says how many each mean has). The "best defence" column
is the mean over seeds of each seed's lowest defended score, as efficacy.py's bottom line reports it. Defended
baselines (``--defended-baselines``'s "clean+D" rows) get a row "(clean photos)" of their own: the score each defence
gives with no protection at all, to read the defended columns against.
"""
from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict
from pathlib import Path

ROW = re.compile(r"^\| (?P<data>[^|]+) \| (?P<grouping>[^|]+) \| (?P<labels>[^|]+) \| (?P<run>[^|]+) \| "
                 r"(?P<clean>[\d.]+) \| (?P<peak>[\d.]+) \| [\d.]+ \| (?P<score>[^|]+) \|$")
RUNS = ["protected", "protected+jpeg:75", "protected+grayscale", "protected+blur:1.0", "protected+downup:0.5",
        "protected+heavyaug"]


def read_scores(path: Path) -> list[tuple[tuple[str, str], str, float]]:
    """Every row of the file as ((dataset, grouping), run, score); 'best' is the bottom line, and each row set's
    'protected' row also gives a 'clean' entry (its clean peak). A file may hold several seeds' row sets."""
    out = []
    for line in path.read_text().splitlines():
        m = ROW.match(line.strip())
        if not m:
            continue
        key, run = (m["data"].strip(), m["grouping"].strip()), m["run"].strip()
        score = float(m["score"].strip("* "))
        if run.startswith("clean+"):  # a defended baseline: its score is what the defence costs a thief by itself
            out.append(((key[0], "(clean photos)"), run.replace("clean+", "protected+"), score))
            continue
        out.append((key, "best" if run.startswith("**best") else run, score))
        if run == "protected":
            out.append((key, "clean", float(m["clean"])))
    return out


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v == v]  # a run with clean at chance scores nan
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    merged: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in args.files:
        for key, run, score in read_scores(path):
            merged[key][run].append(score)
    cols = RUNS + ["best"]
    print("| dataset | grouping | seeds | clean peak | " + " | ".join(c.replace("protected+", "+").replace("protected", "undefended")
                                                           for c in cols) + " |")
    print("|---" * (4 + len(cols)) + "|")
    for (data, grouping), runs in sorted(merged.items()):
        seeds = max(len(v) for v in runs.values())
        print(f"| {data} | {grouping} | {seeds} | {mean_sd(runs['clean'])} | "
              + " | ".join(mean_sd(runs.get(c, [])) for c in cols) + " |")


if __name__ == "__main__":
    main()
