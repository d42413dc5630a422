"""The scratch directories of runs killed before their cleanup (kill -9) are removed by the
next run, and nothing else is: a live run's, one without our marker, another host's or
another process namespace's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

from quantum_trader.optimize.scratch import (
    MARKER,
    Owner,
    is_stale,
    make_scratch,
    owner_of,
    remove_stale,
    write_marker,
)


def scratch(parent: Path, name: str, owner: Owner | None, size: int = 1000) -> Path:
    """A scratch directory like a run's: a cut market file inside, `owner` in its marker."""
    path = parent / f"qt-optimize-{name}"
    (path / "market-0").mkdir(parents=True)
    (path / "market-0" / "BTC_USDT_USDT-5m-futures.feather").write_bytes(b"x" * size)
    if owner is not None:
        write_marker(path, owner)
    return path


def a_process_that_ended() -> Owner:
    """The identity of a process that ran and is gone (reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = owner_of(process.pid)
    finally:
        process.kill()
        process.wait()
    assert owner is not None
    return owner


def test_a_scratch_dir_whose_owner_is_gone_is_removed_and_the_others_are_kept(
    tmp_path: Path,
) -> None:
    me = owner_of(os.getpid())
    assert me is not None
    dead = scratch(tmp_path, "dead", a_process_that_ended(), size=3_000_000)
    # This pid, another start: the run that wrote it is gone and its pid was given again.
    reused = scratch(tmp_path, "reused", replace(me, start_ticks=me.start_ticks - 1))
    rebooted = scratch(tmp_path, "rebooted", replace(me, boot_id="another-boot"))
    live = scratch(tmp_path, "live", me)  # a run going on now (this process)
    unmarked = scratch(tmp_path, "unmarked", None)
    elsewhere = scratch(tmp_path, "elsewhere", replace(me, host="another-host", pid=2**22 + 1))
    # Another container on this host with its own pids (a shared temporary directory).
    contained = scratch(tmp_path, "contained", replace(me, pid_namespace="pid:[1]", pid=2**22 + 2))
    not_ours = tmp_path / "someone-else"
    not_ours.mkdir()
    write_marker(not_ours, a_process_that_ended())
    garbled = scratch(tmp_path, "garbled", None)
    (garbled / MARKER).write_text("{not json")
    link = tmp_path / "qt-optimize-link"
    link.symlink_to(scratch(tmp_path / "far", "target", a_process_that_ended()))

    removed = remove_stale(tmp_path)

    assert (removed.count, removed.parent) == (3, tmp_path)
    assert removed.size_bytes >= 3_002_000
    for path in (dead, reused, rebooted):
        assert not path.exists()
    for path in (live, unmarked, elsewhere, contained, not_ours, garbled, link):
        assert path.exists()
    assert (tmp_path / "far" / "qt-optimize-target").exists()  # a link is never followed
    assert removed.describe() == (
        f"optimize: removed 3 scratch directories of optimize runs that no longer exist from "
        f"{tmp_path} ({removed.size_bytes / 1e6:.1f} MB)"
    )
    assert remove_stale(tmp_path).count == 0


def test_a_new_scratch_dir_names_this_process_and_is_not_stale(tmp_path: Path) -> None:
    path = make_scratch(tmp_path)
    assert path.name.startswith("qt-optimize-")
    me = owner_of(os.getpid())
    assert me is not None
    assert json.loads((path / MARKER).read_text()) == asdict(me)
    assert not is_stale(path)
    assert remove_stale(tmp_path).count == 0
    assert sorted(p.name for p in path.iterdir()) == [MARKER]  # no temporary marker left
