"""The campaigns' command lines share this: seeds run one process each, a few at a time, each
seed's output kept in LOGS/SEED.log and its summary lines printed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def run_seeds(
    script: str,
    first: int,
    count: int,
    at_once: int,
    logs: Path,
    options: Sequence[str],
    shown: tuple[str, ...],
) -> int:
    """`script run SEED *options` for seeds FIRST..FIRST+COUNT-1, `at_once` at a time; the
    lines of each seed's output starting with one of `shown` printed as it ends. Exit 1 when
    a seed failed (its process exited non-zero)."""
    logs.mkdir(parents=True, exist_ok=True)
    pending, failed = list(range(first, first + count)), []
    running: dict[int, tuple[subprocess.Popen[bytes], IO[str]]] = {}
    while pending or running:
        while pending and len(running) < at_once:
            seed = pending.pop(0)
            out = (logs / f"{seed}.log").open("w")
            command = [sys.executable, script, "run", str(seed), *options]
            running[seed] = (subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), out)
        for seed, (process, written) in list(running.items()):
            if process.poll() is None:
                continue
            written.close()
            del running[seed]
            text = (logs / f"{seed}.log").read_text(errors="replace").splitlines()
            lines = [t for t in text if t.startswith(shown)]
            print(
                "\n".join(lines) or f"seed {seed}: exit {process.returncode}, no result", flush=True
            )
            if process.returncode != 0:
                failed.append(seed)
        time.sleep(1)
    print(f"{count} seeds from {first}: {len(failed)} failed {failed}; logs in {logs}")
    return 1 if failed else 0


def seed_commands(
    description: str, at_once: int, logs: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser of a campaign's command line, and its `run SEED` and `campaign FIRST COUNT`
    commands (each with `--minutes`), for the caller's own options."""
    parser = argparse.ArgumentParser(description=description)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one seed, its daemon's log on stdout")
    run.add_argument("seed", type=int)
    run.add_argument("--minutes", type=float, default=4.0)
    many = commands.add_parser("campaign", help="COUNT seeds from FIRST, a process each")
    many.add_argument("first", type=int)
    many.add_argument("count", type=int)
    many.add_argument("--at-once", type=int, default=at_once)
    many.add_argument("--minutes", type=float, default=4.0)
    many.add_argument("--logs", type=Path, default=Path(logs))
    return parser, run, many
