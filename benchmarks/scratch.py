"""Scratch directories a benchmark removes when it ends: a year's run leaves ≈ 30 MB, and a
benchmark run again and again would otherwise fill the machine's temporary directory."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory, removed with its contents when this process exits normally
    (or on Ctrl-C); a process killed by a signal leaves it, as `mkdtemp` always did."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
