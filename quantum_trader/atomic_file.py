"""One file replaced atomically inside a directory held open by descriptor.

The daemon's data directory may be moved or replaced while it runs (`mv data data.old &&
mkdir data`): it checks the directory before every step (ops/data_dir.py), but a write within
a step that names the file by path lands in whatever directory holds that path by then. A
write through the descriptor of the directory as it was opened lands there, never in another.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def open_directory(path: os.PathLike[str] | str) -> int:
    """A descriptor of the directory `path` names now (close it with os.close)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def replace_in(directory: int, name: str, text: str, *, durable: bool = False) -> None:
    """Write `text` to `name` in `directory` (a descriptor) through a temporary file and a
    rename: a reader, or a crash, sees the old file or the new one. `durable`: synced to
    disk before the rename (an account; not a heartbeat)."""
    temporary = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    handle = os.open(temporary, flags, 0o600, dir_fd=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)
        raise


def replace_at(path: Path, text: str, *, durable: bool = False) -> None:
    """`replace_in` the directory `path` names now (no directory held open)."""
    directory = open_directory(path.parent)
    try:
        replace_in(directory, path.name, text, durable=durable)
    finally:
        os.close(directory)
