"""A backtest's output directory, replaced whole or not at all.

Everything is written into a partial directory beside the target (`.NAME.partial-PID`); only a
finished run swaps it in: the old directory is renamed to `.NAME.previous`, the new one to
NAME, and the previous one removed. A run that fails or is stopped removes its partial
directory and leaves the old outputs untouched. A process killed between the two renames
leaves `.NAME.previous` without NAME: the next run puts it back before anything else.

Only a directory that holds a backtest's outputs (or nothing) is ever replaced: anything else
is refused, so `--out data` cannot wipe a data directory, nor a later run a file someone put
beside the outputs of an earlier one. One run at a time writes an output directory: a run holds
`.NAME.lock` beside it (flock, released by the kernel however the process ends, removed when
the run ends) and another run there is refused at its start, naming the first's PID
(`sole_writer`, which `train` takes on the models directory too).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from quantum_trader.errors import ConfigurationError

MARKER = ".quantum-trader-backtest"
# What a backtest wrote before the marker existed.
LEGACY_OUTPUTS = frozenset({"report.json", "backtest.db", "backtest.db-wal", "backtest.db-shm"})
# What a backtest or walk-forward writes: these files, charts/*.png and models/block-*/.
OUTPUT_FILES = LEGACY_OUTPUTS | {MARKER, "report.html"}
CHARTS, MODELS = "charts", "models"


@contextmanager
def staged_output(out: Path) -> Iterator[Path]:
    """Yield an empty partial directory; on success it becomes `out` in one swap."""
    out = out.absolute()
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"

    def refused(pid: str) -> str:
        return (
            f"--out {out}: another backtest or walk-forward (PID {pid}) is writing there; "
            "wait for it to finish, or choose another directory"
        )

    with sole_writer(out, f"--out {out}", refused):
        yield from _staged(out, partial)


@contextmanager
def sole_writer(target: Path, name: str, refused: Callable[[str], str]) -> Iterator[None]:
    """Hold `target`'s lock (`.NAME.lock` beside it) for the block, or raise
    ConfigurationError: `refused(PID)` when another process holds it, else that `name`
    cannot be written."""
    lock = _lock(target, name, refused)
    try:
        yield
    finally:
        _unlock(target, lock)


def _staged(out: Path, partial: Path) -> Iterator[Path]:
    try:
        _refuse_foreign(out)
        _recover(out)
        _remove_abandoned(out)
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        (partial / MARKER).write_text("outputs of `quantum-trader backtest`\n", encoding="utf-8")
    except OSError as error:  # before anything is replayed: the place, not the run, is wrong
        shutil.rmtree(partial, ignore_errors=True)
        why = error.strerror or str(error)
        raise ConfigurationError(
            [f"--out {out}: cannot write there ({why}); choose a directory you can write to"]
        ) from None
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _swap(partial, out)


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _lock(out: Path, name: str, refused: Callable[[str], str]) -> int:
    """Hold `out`'s lock (a descriptor), or raise ConfigurationError naming the run that does."""
    path = _lock_path(out)
    while True:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            why = error.strerror or str(error)
            raise ConfigurationError(
                [f"{name}: cannot write there ({why}); choose a directory you can write to"]
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 32).decode("ascii", "replace").strip() or "?"
            os.close(descriptor)
            raise ConfigurationError([refused(holder)]) from None
        # A run that ended unlinks the file it locked: lock the one at the path.
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
                os.ftruncate(descriptor, 0)
                os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
                return descriptor
        os.close(descriptor)


def _unlock(out: Path, descriptor: int) -> None:
    with contextlib.suppress(OSError):
        _lock_path(out).unlink()  # while held: a run waiting on it sees it gone and retries
    os.close(descriptor)


def _refuse_foreign(out: Path) -> None:
    if out == Path.cwd().absolute() or out in Path.cwd().absolute().parents:
        raise ConfigurationError([f"--out {out}: the working directory cannot be replaced"])
    if out.exists() and not out.is_dir():
        raise ConfigurationError([f"--out {out}: is a file, not a directory"])
    if not out.is_dir():
        return
    foreign = _foreign(out)
    if not foreign:
        return
    raise ConfigurationError(
        [
            f"--out {out}: holds files that are not a backtest's outputs "
            f"({', '.join(foreign[:5])}); "
            "the backtest replaces the whole directory, so choose a new or empty one"
        ]
    )


def _foreign(out: Path) -> list[str]:
    """What in `out` no backtest or walk-forward wrote (sorted, relative names)."""
    foreign = []
    for entry in sorted(out.iterdir()):
        name = entry.name
        if name in OUTPUT_FILES and entry.is_file():
            continue
        if name == CHARTS and entry.is_dir():
            foreign += [f"{CHARTS}/{p.name}" for p in sorted(entry.iterdir()) if not _png(p)]
        elif name == MODELS and entry.is_dir():
            foreign += [f"{MODELS}/{p.name}" for p in sorted(entry.iterdir()) if not _block(p)]
        else:
            foreign.append(name)
    return foreign


def _png(path: Path) -> bool:
    return path.is_file() and path.suffix == ".png"


def _block(path: Path) -> bool:
    return path.is_dir() and path.name.startswith("block-")


def _previous(out: Path) -> Path:
    return out.parent / f".{out.name}.previous"


def _recover(out: Path) -> None:
    """Finish a swap a killed process left half done."""
    previous = _previous(out)
    if not previous.is_dir():
        return
    if out.exists():
        shutil.rmtree(previous)
    else:
        previous.rename(out)


def _remove_abandoned(out: Path) -> None:
    """Remove partial directories of runs whose process no longer exists."""
    for partial in out.parent.glob(f".{out.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap(partial: Path, out: Path) -> None:
    previous = _previous(out)
    if out.exists():
        out.rename(previous)
    partial.rename(out)
    _sync_directory(out.parent)
    shutil.rmtree(previous, ignore_errors=True)


def _sync_directory(directory: Path) -> None:
    """Make the renames durable (best effort where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
