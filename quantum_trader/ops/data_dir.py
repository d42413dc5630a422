"""The data directory: checked before use, and held by one daemon at a time.

`prepare_data_dir` creates the directory and proves it is writable, or raises
ConfigurationError naming `data_dir`. `hold_data_dir` takes an exclusive `flock` on
`data_dir/daemon.lock` and writes the holder's PID into it; the kernel drops the lock when the
process exits, however it exits (kill -9 included), so a lock file left by a dead process is
simply taken over. A file the daemon keeps there (its database, its paper account) that is a
symbolic link into another directory is that directory's too: its lock is held as well, so a
daemon there, or another linking to the same files, is refused as on the same directory.
`read_lock` tells, without taking anything, whether a process holds it.
`HeldDataDir.check` tells the running daemon that its directory was removed or replaced
under it (`rm -rf data` while it runs), after which its writes would go to files no one reads
and another daemon could take the directory.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from quantum_trader.atomic_file import open_directory, replace_in
from quantum_trader.errors import ConfigurationError, StorageFailed, UsageError
from quantum_trader.record import record

LOCK_FILE = "daemon.lock"
# A reader (`read_lock`) holds a shared lock for microseconds: a daemon starting at that instant
# tries again for this long before it concludes that another daemon holds the directory.
_ACQUIRE_ATTEMPTS = 10
_ACQUIRE_PAUSE_S = 0.05
_WHERE = "point QT_DATA_DIR (or data_dir in the config file) at"


@record
class LockState:
    """Whether a process holds the data directory's lock, and its PID when it wrote one."""

    held: bool
    pid: int | None = None


def prepare_data_dir(
    path: Path, keeps: str = "the daemon keeps its database, paper account and heartbeat there"
) -> None:
    """Create `path` (the data directory, or the part of it a command writes) if needed and
    check that files can be created in it; `keeps` says what is kept there."""
    if path.exists() and not path.is_dir():
        raise ConfigurationError(
            [f"data_dir: {path} is a file, not a directory: move it, or {_WHERE} a directory"]
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(
            [
                f"data_dir: cannot create {path} ({error.strerror}): create it, or {_WHERE} a "
                "directory that can be created"
            ]
        ) from None
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=".write-probe-")
    except OSError as error:
        raise ConfigurationError(
            [
                f"data_dir: {path} is not writable ({error.strerror}): {keeps}; make it "
                f"writable, or {_WHERE} a writable directory"
            ]
        ) from None
    os.close(handle)
    os.unlink(probe)


class HeldDataDir:
    """The lock file held, and the files the daemon keeps open there, as they were opened."""

    def __init__(self, path: Path, lock_descriptor: int, directory: int) -> None:
        self.path = path
        self._directory = directory  # the directory as it was held: writes land there
        status = os.fstat(lock_descriptor)
        self._kept = {path / LOCK_FILE: (status.st_dev, status.st_ino)}

    def keep(self, file: Path) -> None:
        """Check `file` (opened and kept open: the database) along with the lock."""
        status = os.stat(file)
        self._kept[file] = (status.st_dev, status.st_ino)

    def write(self, name: str, text: str) -> None:
        """Replace `name` in the held directory atomically — in that directory even when its
        path names another by now (moved or replaced between the check and the write)."""
        replace_in(self._directory, name, text)

    def check(self) -> None:
        """Raise StorageFailed when a kept file is gone from its path or another file is
        there: the directory was removed, moved or replaced while the daemon ran."""
        for file, identity in self._kept.items():
            try:
                status = os.stat(file)
            except FileNotFoundError:
                found = "is gone"
            else:
                if (status.st_dev, status.st_ino) == identity:
                    continue
                found = "is another file"
            raise StorageFailed(
                f"{file} {found}: the data directory {self.path} was removed or replaced while "
                "the daemon ran, so what it writes would be lost and another daemon could take "
                "the directory; put it back, or start afresh (the exchange's positions are "
                "adopted; a paper account starts anew)"
            )


@contextmanager
def hold_data_dir(path: Path, kept: Sequence[str] = ()) -> Iterator[HeldDataDir]:
    """Hold `path`'s lock for the duration, and the lock of each other directory one of the
    files named in `kept` links into; UsageError naming the PID of another holder."""
    with ExitStack() as stack:
        descriptor = stack.enter_context(_held_lock(path / LOCK_FILE))
        if descriptor is None:
            raise _in_use(f"data directory {path}", path / LOCK_FILE)
        for name, home in _linked_homes(path, kept):
            if stack.enter_context(_held_lock(home / LOCK_FILE)) is None:
                raise _in_use(
                    f"{path / name} links into {home}, which",
                    home / LOCK_FILE,
                    " (two daemons would write the same file)",
                )
        directory = open_directory(path)
        try:
            yield HeldDataDir(path, descriptor, directory)
        finally:
            os.close(directory)


@contextmanager
def _held_lock(lock: Path) -> Iterator[int | None]:
    """The lock file's descriptor, locked with this process's PID written in (None: another
    process holds it) until the end of the block."""
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise ConfigurationError(
            [
                f"data_dir: cannot open the lock file {lock} ({error.strerror}): make it "
                f"writable, or {_WHERE} another directory"
            ]
        ) from None
    try:
        if not _lock_exclusively(descriptor):
            yield None
            return
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield descriptor
    finally:
        os.close(descriptor)  # releases the lock; the file stays (unlinking it would race)


def _in_use(what: str, lock: Path, why: str = "") -> UsageError:
    pid = read_lock(lock.parent).pid
    holder = f"PID {pid}" if pid else "a process that has not written its PID yet"
    return UsageError(
        f"{what} is in use by another daemon ({holder}, lock {lock}){why}: stop that daemon "
        f"first, or {_WHERE} another directory"
    )


def _linked_homes(path: Path, kept: Sequence[str]) -> list[tuple[str, Path]]:
    """(name, the directory it resolves into) of each file of `kept` in `path` that is a
    symbolic link resolving outside `path`, each directory once."""
    here, homes, found = path.resolve(), set(), []
    for name in kept:
        file = path / name
        if not file.is_symlink():
            continue
        home = file.resolve().parent
        if home != here and home not in homes:
            homes.add(home)
            found.append((name, home))
    return found


def read_lock(path: Path) -> LockState:
    """Whether a process holds `path`'s lock (and its PID), taking nothing and creating nothing."""
    try:
        descriptor = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return LockState(held=False)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return LockState(held=True, pid=_read_pid(descriptor))
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return LockState(held=False)
    finally:
        os.close(descriptor)


def _lock_exclusively(descriptor: int) -> bool:
    for attempt in range(_ACQUIRE_ATTEMPTS):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < _ACQUIRE_ATTEMPTS:
                time.sleep(_ACQUIRE_PAUSE_S)
    return False


def _read_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None
