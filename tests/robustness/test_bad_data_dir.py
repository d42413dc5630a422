"""The data directory: a file, uncreatable or read-only → exit 2 naming `data_dir`; one
daemon per directory (an exclusive flock), the second exits 2 naming the holder's PID — also
where its database or paper account links into the first's directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from child_env import child_env
from daemon_harness import Daemon, cli, eventually
from damage_fixtures import contents, data_dir, stopped_daemon_template

from quantum_trader.errors import StorageFailed, UsageError
from quantum_trader.ops.data_dir import LOCK_FILE, hold_data_dir, read_lock
from quantum_trader.ops.presence import daemon_presence

__all__ = ["data_dir", "stopped_daemon_template"]
# A process that takes the data directory's lock the way the daemon does, then waits.
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "daemon.lock"), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("held", flush=True)
time.sleep(120)
"""


UNSHARE = ("unshare", "--user", "--map-root-user", "--mount")


def only_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


def test_a_data_dir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_text("my notes\n")
    done = run_with_data_dir(tmp_path, path)
    assert done.returncode == 2
    assert only_line(done) == (
        f"configuration error: data_dir: {path} is a file, not a directory: move it, or point "
        "QT_DATA_DIR (or data_dir in the config file) at a directory"
    )
    assert path.read_text() == "my notes\n"


def test_a_data_dir_that_cannot_be_created_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "data"
    done = run_with_data_dir(tmp_path, path)
    assert done.returncode == 2
    assert only_line(done).startswith(
        f"configuration error: data_dir: cannot create {path} (Not a directory)"
    )


SAMPLE_FILE = Path(__file__).parents[2] / "quantum_trader/resources/sample"
WRITERS = {
    "train": ("train",),
    "import-data": ("import-data", str(SAMPLE_FILE / "BTC_USDT_USDT-5m-futures.feather")),
    "download-data": ("download-data", "--symbols", "BTC/USDT:USDT", "--days", "1"),
}


@pytest.mark.parametrize("command", WRITERS)
def test_the_commands_that_write_into_it_check_it_first(tmp_path: Path, command: str) -> None:
    """Before minutes of training or any request: exit 2 at once (it was a traceback, for
    training after the work was done)."""
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "data"
    clean = child_env()
    done = subprocess.run(
        [sys.executable, "-m", "quantum_trader", *WRITERS[command]],
        env={**clean, "QT_DATA_DIR": str(path), "QT_SIGNALS__SOURCE": "rules"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert only_line(done).startswith(
        f"configuration error: data_dir: cannot create {path}/"  # models/ or market/
    )


def test_a_heartbeat_that_is_not_a_file_exits_1_naming_it(tmp_path: Path) -> None:
    """Every step would fail to touch it, and status would find no daemon running."""
    path = tmp_path / "data"
    (path / "heartbeat").mkdir(parents=True)
    done = run_with_data_dir(tmp_path, path)
    assert done.returncode == 1
    assert only_line(done) == (
        f"error: {path / 'heartbeat'} is not a file: move it aside; the daemon writes its "
        "heartbeat there (status and the operator commands read it)"
    )


def test_a_read_only_data_dir_exits_2_and_keeps_its_files(data_dir: Path) -> None:
    before = contents(data_dir)
    done = run_read_only(data_dir, "run")
    assert done.returncode == 2, done.stderr
    line = only_line(done)
    assert line.startswith(f"configuration error: data_dir: {data_dir} is not writable (")
    assert "make it writable" in line
    assert contents(data_dir) == before


def test_status_still_reads_a_read_only_data_dir(data_dir: Path) -> None:
    done = run_read_only(data_dir, "status")
    assert done.returncode == 0, done.stderr
    shown = " ".join(word for word in done.stdout.split() if word != "│")  # table borders
    assert "daemon no daemon is running on" in shown


def test_a_second_daemon_on_the_same_data_dir_exits_2_naming_the_first(data_dir: Path) -> None:
    first = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    try:
        eventually(lambda: read_lock(data_dir).pid == first.process.pid, 30, "the first's lock")
        second = cli(data_dir, "run")
        assert second.returncode == 2
        assert only_line(second) == (
            f"error: data directory {data_dir} is in use by another daemon (PID "
            f"{first.process.pid}, lock {data_dir / LOCK_FILE}): stop that daemon first, or "
            "point QT_DATA_DIR (or data_dir in the config file) at another directory"
        )
        assert first.process.poll() is None, "the first daemon must keep running"
    finally:
        assert first.stop(signal.SIGTERM) == 0
    assert len(first.named("runtime_ready")) == 1
    assert not read_lock(data_dir).held


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        assert read_lock(tmp_path).held
        assert read_lock(tmp_path).pid == holder.pid
        in_use = f"in use by another daemon \\(PID {holder.pid},"
        with pytest.raises(UsageError, match=in_use), hold_data_dir(tmp_path):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_FILE).read_text() == str(holder.pid)  # the file outlived it
    assert not read_lock(tmp_path).held  # the kernel released the lock with the process
    with hold_data_dir(tmp_path):
        assert read_lock(tmp_path).pid == os.getpid()
    assert not read_lock(tmp_path).held


def test_a_file_linked_into_a_held_directory_is_refused_naming_its_holder(tmp_path: Path) -> None:
    """An outside probe (2026-12-06) started a second daemon on a running one's database
    through a symbolic link: the lock was per directory. The link's directory is held too."""
    kept = "quantum_trader.db"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / kept).write_text("")
    (second / kept).symlink_to(first / kept)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(first)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError) as refused, hold_data_dir(second, (kept,)):
            pass
        assert str(refused.value) == (
            f"{second / kept} links into {first}, which is in use by another daemon (PID "
            f"{holder.pid}, lock {first / LOCK_FILE}) (two daemons would write the same file): "
            "stop that daemon first, or point QT_DATA_DIR (or data_dir in the config file) at "
            "another directory"
        )
        assert not read_lock(second).held  # given up with the refusal
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with hold_data_dir(second, (kept,)):  # the other way round: the daemon there is refused
        assert read_lock(first).pid == read_lock(second).pid == os.getpid()
        with pytest.raises(UsageError, match=f"PID {os.getpid()}"), hold_data_dir(first):
            pass
    assert not read_lock(first).held


def test_a_link_inside_the_data_dir_or_a_linked_data_dir_takes_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "elsewhere.db").write_text("")
    (real / "quantum_trader.db").symlink_to(real / "elsewhere.db")
    (tmp_path / "linked").symlink_to(real)
    with hold_data_dir(tmp_path / "linked", ("quantum_trader.db", "paper_exchange.json")):
        assert read_lock(real).pid == os.getpid()
    assert not read_lock(real).held


def test_a_second_daemon_on_a_running_daemons_database_by_a_link_exits_2(
    data_dir: Path, tmp_path: Path
) -> None:
    first = Daemon.start(data_dir, QT_MARKET__REPLAY_SPEED="1")
    other = tmp_path / "other"
    other.mkdir()
    (other / "quantum_trader.db").symlink_to(data_dir / "quantum_trader.db")
    try:
        eventually(lambda: read_lock(data_dir).pid == first.process.pid, 30, "the first's lock")
        second = cli(other, "run")
        assert second.returncode == 2
        assert only_line(second).startswith(
            f"error: {other / 'quantum_trader.db'} links into {data_dir}, which is in use by "
            f"another daemon (PID {first.process.pid}, "
        )
        assert first.process.poll() is None, "the first daemon must keep running"
    finally:
        assert first.stop(signal.SIGTERM) == 0
    assert not read_lock(other).held


def test_a_linked_paper_account_exits_2_and_stays_as_it_was(data_dir: Path, tmp_path: Path) -> None:
    """Each save replaces the account inside the data directory: the link would have become a
    file of its own, the linked account left behind unchanged."""
    elsewhere = tmp_path / "kept" / "paper_exchange.json"
    elsewhere.parent.mkdir()
    (data_dir / "paper_exchange.json").replace(elsewhere)
    (data_dir / "paper_exchange.json").symlink_to(elsewhere)
    before, kept = contents(data_dir), elsewhere.read_bytes()
    done = cli(data_dir, "run")
    assert done.returncode == 2
    assert only_line(done) == (
        f"configuration error: data_dir: the paper account {data_dir / 'paper_exchange.json'} "
        f"is a symbolic link (to {elsewhere}): each save replaces it inside the data "
        "directory, leaving the linked file behind; move that file into the data directory in "
        "place of the link, or point QT_DATA_DIR (or data_dir in the config file) at the "
        "directory that holds it"
    )
    assert contents(data_dir) == before
    assert elsewhere.read_bytes() == kept
    assert (data_dir / "paper_exchange.json").is_symlink()


def test_a_lock_file_with_garbage_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_bytes(b"\x00\xffnot a pid")
    assert read_lock(tmp_path).held is False
    with hold_data_dir(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_reading_the_lock_creates_nothing(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "absent").held is False
    assert daemon_presence(tmp_path / "absent", datetime.now(UTC)).running is False
    assert not (tmp_path / "absent").exists()


def run_with_data_dir(cwd: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", "run"],
        env={**clean, "QT_DATA_DIR": str(data_dir)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_read_only(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`quantum-trader ARGS` with `data_dir` read-only: mode 0555 for a normal user; for root
    (who writes anyway) a read-only bind mount in a user and mount namespace of its own."""
    if os.geteuid() != 0:
        data_dir.chmod(0o555)
        try:
            return cli(data_dir, *args)
        finally:
            data_dir.chmod(0o755)
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    clean = child_env()
    return subprocess.run(
        [*UNSHARE, "sh", "-c", mount, str(data_dir), sys.executable, "-m", "quantum_trader", *args],
        env={**clean, "QT_DATA_DIR": str(data_dir)},
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_held_directory_writes_into_itself_even_after_another_took_its_path(
    tmp_path: Path,
) -> None:
    """`HeldDataDir.write`, which every file the daemon writes there goes through (heartbeat,
    marks, analytics, the balancer's output, the stopping mark): moved away and another made
    in its place between the step's check and the write, the file lands in the directory
    held, not the new one (the suite's data-directory test met that race, 2026-12-05)."""
    data, moved = tmp_path / "data", tmp_path / "data.old"
    data.mkdir()
    with hold_data_dir(data) as held:
        held.write("heartbeat", "one")
        data.rename(moved)
        data.mkdir()
        held.write("heartbeat", "two")
    assert list(data.iterdir()) == []
    assert (moved / "heartbeat").read_text() == "two"
    assert sorted(p.name for p in moved.iterdir()) == [LOCK_FILE, "heartbeat"]


def test_the_held_directory_says_when_its_files_are_gone_or_another(tmp_path: Path) -> None:
    """`HeldDataDir.check`, which the daemon makes at every step: quiet while the lock file
    and the database are the files it opened; StorageFailed naming the file once either is
    gone (the directory removed) or another file stands in its place (replaced)."""
    data = tmp_path / "data"
    data.mkdir()
    database = data / "quantum_trader.db"
    database.write_bytes(b"")
    with hold_data_dir(data) as held:
        held.keep(database)
        held.check()
        database.rename(data / "aside.db")
        database.write_bytes(b"")  # another file at the path
        with pytest.raises(StorageFailed, match=f"^{database} is another file: the data dir"):
            held.check()
        (data / "aside.db").replace(database)
        held.check()  # the same file back
        (data / LOCK_FILE).unlink()
        with pytest.raises(StorageFailed, match=f"^{data / LOCK_FILE} is gone: the data dir"):
            held.check()
