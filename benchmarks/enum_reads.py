"""Where the program reads enum members through their classes, counted by site.

    .venv/bin/python -m benchmarks.enum_reads                      # 2025-03-01 → 03-15
    .venv/bin/python -m benchmarks.enum_reads --start 2025-06-01 --end 2025-06-08 --top 40

In Python 3.11 `EnumType` defines `__getattr__`, so every attribute read on an enum class
(`Side.LONG`) goes through the interpreter's slow lookup hook: ≈ 75 ns against ≈ 7 ns for a
global (≈ 890 instructions under callgrind). domain/enums.py says how the hot paths avoid it.
This runs the backtest command in process over a window of `../shared/data` (rule signals,
the simulated operator) with an opcode trace of the frames whose code reads a member so
(`LOAD_GLOBAL <enum class>` then `LOAD_ATTR <member>`), and prints the reads by site, most
first. The fifty-second pass found 76,718 in the default two weeks and left ≈ 23,600
(docs/BENCHMARKS.md). Tracing slows those frames down many times: counts only, no timing.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dis
import enum
import os
import sys
import tempfile
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import quantum_trader
from quantum_trader import cli

PACKAGE = str(Path(quantum_trader.__file__).parent) + os.sep
SHARED_FUTURES = Path("../shared/data/binance/futures")
Site = tuple[str, int, str, str]  # file, line, function, "Class.MEMBER"


class EnumReads:
    """Counts of `Class.MEMBER` reads by site, gathered by `sys.settrace`."""

    def __init__(self) -> None:
        self.counts: collections.Counter[Site] = collections.Counter()
        self._sites: dict[CodeType, dict[int, Site]] = {}

    def sites(self, frame: FrameType) -> dict[int, Site]:
        """The offsets in `frame`'s code that read an enum member through its class."""
        code = frame.f_code
        found = self._sites.get(code)
        if found is None:
            found = self._sites[code] = _member_reads(code, frame.f_globals)
        return found

    def on_call(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(PACKAGE) or not self.sites(frame):
            return None
        frame.f_trace_opcodes = True
        return self.on_opcode

    def on_opcode(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            site = self._sites[frame.f_code].get(frame.f_lasti)
            if site is not None:
                self.counts[site] += 1
        return self.on_opcode


def _member_reads(code: CodeType, module: dict[str, Any]) -> dict[int, Site]:
    found: dict[int, Site] = {}
    before = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == "CACHE":
            continue
        if instruction.opname == "LOAD_ATTR" and before is not None:
            owner = module.get(str(before.argval)) if before.opname == "LOAD_GLOBAL" else None
            if isinstance(owner, enum.EnumType) and instruction.argval in owner.__members__:
                line = instruction.positions.lineno if instruction.positions else None
                where = code.co_filename.removeprefix(PACKAGE)
                name = f"{before.argval}.{instruction.argval}"
                found[instruction.offset] = (where, line or 0, code.co_name, name)
        before = instruction
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", default="2025-03-01")
    parser.add_argument("--end", default="2025-03-15")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if not SHARED_FUTURES.is_dir():
        sys.exit(f"error: {SHARED_FUTURES} not found: run from the repository root")
    reads = EnumReads()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ |= {
            "QT_DATA_DIR": str(Path(scratch) / "data"),
            "QT_MARKET__REPLAY_DIR": str(SHARED_FUTURES),
            "QT_SIGNALS__SOURCE": "rules",
            "QT_BACKTEST__OPERATOR_RESET_AFTER": "86400",
        }
        out = str(Path(scratch) / "out")
        sys.argv = ["quantum-trader", "backtest", "--start", args.start, "--end", args.end]
        sys.argv += ["--out", out]
        sys.settrace(reads.on_call)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the command's summary, apart
                cli.main()
        except SystemExit as done:
            if done.code:
                raise
        finally:
            sys.settrace(None)
    total = sum(reads.counts.values())
    print(f"{total:,} enum members read through their classes, {args.start} → {args.end}")
    for (where, line, function, name), count in reads.counts.most_common(args.top):
        print(f"{count:9,}  {where}:{line}  {function}  {name}")


if __name__ == "__main__":
    main()
