"""The replay's time by part from a sampling profile: no timing wraps, so shares as they are.

    python3 -m venv /tmp/spy && /tmp/spy/bin/pip install py-spy       # not a project dependency
    /tmp/spy/bin/py-spy record -r 200 -f raw -o /tmp/replay.spy -- \\
        .venv/bin/python -m benchmarks.bench_replay_parts --untimed
    .venv/bin/python -m benchmarks.spy_shares /tmp/replay.spy

Reads py-spy's raw output (one line a stack: frames joined by ";", then the sample count) and
prints the share of the replay's samples (stacks through `_replay`) under each of its direct
parts, and under each part's own parts for the three largest. Samples of threads waiting
(aiosqlite's worker) never pass through `_replay` and are left out.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

ROOT = "_replay"
OPENED = ("Executor.run_cycle", "QuietSteps._keeper_still", "QuietChecks.cycle_unmoved")


def _name(frame: str) -> str:
    return re.sub(r" \(.*", "", frame)


def shares(raw: Path) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """The replay's samples, the samples under each of its parts, and under each part of the
    OPENED ones ("part > its part")."""
    parts: collections.Counter[str] = collections.Counter()
    inner: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_name(frame) for frame in stack.split(";")]
        if ROOT not in frames:
            continue
        samples = int(count)
        total += samples
        below = frames[frames.index(ROOT) + 1 :]
        parts[below[0] if below else "(the loop itself)"] += samples
        for opened in OPENED:
            if opened in below:
                at = below.index(opened)
                own = below[at + 1] if at + 1 < len(below) else "(itself)"
                inner[f"{opened} > {own}"] += samples
    return total, parts, inner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("raw", type=Path, help="py-spy record -f raw output")
    options = parser.parse_args()
    total, parts, inner = shares(options.raw)
    if not total:
        raise SystemExit(f"{options.raw}: no samples under {ROOT}: is it a backtest's profile?")
    print(f"{total:,} samples in the replay\n| part | share |\n|---|---|")
    for name, samples in parts.most_common():
        print(f"| {name} | {100 * samples / total:.1f} % |")
    print("| **of which** | |")
    for name, samples in inner.most_common(16):
        print(f"| {name} | {100 * samples / total:.1f} % |")


if __name__ == "__main__":
    main()
