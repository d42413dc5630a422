"""The study's scratch directory (the cut markets, the blocks' backtest outputs: MBs each) in
the temporary directory: made with an owner marker, removed by its run at the end, and when a
run could not (kill -9, a power cut) by a later run that finds it.

A later run removes a directory only when it can prove it stale: the name is ours
(`qt-optimize-…`), it is a directory (not a link) of this user, it holds our marker, written on
this host, and the process the marker names is gone — no such process, a zombie, a process
that started at another moment (its pid reused), or a boot since the marker was written. The
start moment is the kernel's `starttime` (clock ticks since boot, `/proc/PID/stat`), which no
clock adjustment moves. Anything else is kept: a run in progress (two runs at once both work),
a directory without a marker (a run between making it and writing the marker, or not ours),
a marker from another host or another process namespace (a temporary directory shared between
containers: their pids are not ours to look up), a marker that cannot be read. Without
`/proc` (not Linux) no marker is written, so nothing is ever removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
from dataclasses import asdict
from pathlib import Path

from quantum_trader.record import record

PREFIX = "qt-optimize-"
PID_NAMESPACE = "/proc/self/ns/pid"
MARKER = "owner.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@record
class Owner:
    """A process, told apart from any later one given the same pid."""

    pid: int
    start_ticks: int
    boot_id: str
    host: str
    pid_namespace: str  # the pids it can be looked up among (`/proc/self/ns/pid`)


@record
class Removed:
    """What `remove_stale` removed from `parent`."""

    parent: Path
    count: int
    size_bytes: int

    def describe(self) -> str:
        noun = "directory" if self.count == 1 else "directories"
        return (
            f"optimize: removed {self.count} scratch {noun} of optimize runs that no longer "
            f"exist from {self.parent} ({self.size_bytes / 1e6:.1f} MB)"
        )


def make_scratch(parent: Path | None = None) -> Path:
    """A new scratch directory in `parent` (default: the temporary directory), marked as this
    process's."""
    path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
    owner = owner_of(os.getpid())
    if owner is not None:
        write_marker(path, owner)
    return path


def write_marker(path: Path, owner: Owner) -> None:
    """Write the marker through a file of another name renamed into place: a reader finds the
    whole marker or none (and keeps the directory)."""
    temporary = path / f".{MARKER}.tmp"
    temporary.write_text(json.dumps(asdict(owner)), encoding="utf-8")
    os.replace(temporary, path / MARKER)


def owner_of(pid: int) -> Owner | None:
    """The running process `pid`; None when there is none (or a zombie) or no `/proc`."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot_id = BOOT_ID.read_text().strip()
        namespace = os.readlink(PID_NAMESPACE)
    except (OSError, IndexError):
        return None
    # After the command name: field 3 (state) is fields[0], field 22 (starttime) fields[19].
    if fields[0] in ("Z", "X"):
        return None
    return Owner(pid, int(fields[19]), boot_id, socket.gethostname(), namespace)


def remove_stale(parent: Path | None = None) -> Removed:
    """Remove the scratch directories in `parent` (default: the temporary directory) whose
    marker names a process that is gone; return how many and their size."""
    parent = Path(parent or tempfile.gettempdir())
    count = size = 0
    here = owner_of(os.getpid())
    if here is None:  # no /proc here: no owner can be proven gone
        return Removed(parent, count, size)
    with contextlib.suppress(OSError):  # an unreadable temporary directory: nothing to do
        for path in sorted(parent.glob(f"{PREFIX}*")):
            if is_stale(path, here):
                found = _size(path)
                shutil.rmtree(path, ignore_errors=True)  # another run may remove it at once
                if not path.exists():
                    count, size = count + 1, size + found
    return Removed(parent, count, size)


def is_stale(path: Path, here: Owner | None = None) -> bool:
    """Whether `path` is a scratch directory of ours whose owner is proven gone; `here`: this
    process (read once by a caller judging several)."""
    try:
        status = path.lstat()
        if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid():
            return False
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        owner = Owner(
            int(marker["pid"]),
            int(marker["start_ticks"]),
            str(marker["boot_id"]),
            str(marker["host"]),
            str(marker["pid_namespace"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no marker, or not one we wrote: not provably ours
    here = here or owner_of(os.getpid())
    if here is None or (owner.host, owner.pid_namespace) != (here.host, here.pid_namespace):
        return False  # its processes are not ours to see
    return owner_of(owner.pid) != owner  # gone, reused, or from before a boot


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
