"""Are two backtests' reports the same? report.json, report.html and every charts/*.png, byte
for byte, except the wall-time fields (`elapsed_s`, `candles_per_s` and the page's "replayed in
… s"), which differ from run to run.

    .venv/bin/python -m benchmarks.compare_reports OUT_A OUT_B

Prints each file as `same` or `DIFFERS` (with the first differing line of a text file) and
exits 1 when any differs or is missing on one side.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# What carries wall time: two fields of report.json, one sentence of report.html.
WALL_TIME = {
    "report.json": re.compile(rb'("(?:elapsed_s|candles_per_s)": )[-0-9.e+]+()'),
    "report.html": re.compile(rb"(candles replayed in )[-0-9.e+]+( s\.)"),
}


def normalized(name: str, content: bytes) -> bytes:
    pattern = WALL_TIME.get(name)
    return content if pattern is None else pattern.sub(rb"\1<wall>\2", content)


def report_files(out: Path) -> list[str]:
    charts = sorted(f"charts/{p.name}" for p in (out / "charts").glob("*.png"))
    return ["report.json", "report.html", *charts]


def compare(a: Path, b: Path) -> list[str]:
    """One line per file: `same`, or why not."""
    lines = []
    for name in sorted(set(report_files(a)) | set(report_files(b))):
        if not (a / name).is_file() or not (b / name).is_file():
            lines.append(f"{name}: MISSING on one side")
            continue
        left = normalized(name, (a / name).read_bytes())
        right = normalized(name, (b / name).read_bytes())
        lines.append(
            f"{name}: same ({len(left):,} bytes)" if left == right else _diff(name, left, right)
        )
    return lines


def _diff(name: str, left: bytes, right: bytes) -> str:
    if name.endswith(".png"):
        return f"{name}: DIFFERS ({len(left):,} vs {len(right):,} bytes)"
    pairs = zip(left.splitlines(), right.splitlines(), strict=False)
    number, (one, other) = next(
        ((n, pair) for n, pair in enumerate(pairs, 1) if pair[0] != pair[1]),
        (0, (b"<length>", b"<length>")),
    )
    return f"{name}: DIFFERS at line {number}: {one[:120]!r} vs {other[:120]!r}"


def main() -> int:
    a, b = (Path(arg) for arg in sys.argv[1:3])
    lines = compare(a, b)
    print("\n".join(lines))
    return 0 if all(": same" in line for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
