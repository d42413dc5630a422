"""The real `quantum-trader run` in a subprocess, and read-only looks at what it leaves behind:
its SQLite database (polled while it runs), its JSON log, and the paper exchange's file."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from child_env import child_env

from quantum_trader.execution.paper_state import PaperState, load_state

T = TypeVar("T")
DATABASE = "quantum_trader.db"
PAPER_STATE = "paper_exchange.json"

# A terminal starts its jobs with SIGHUP at its default. A suite run under `nohup` (or by a
# service that ignores SIGHUP) hands its children SIGHUP ignored, which the program honours
# (stop_signals.py: whoever used nohup asked it to outlive the terminal), so a test hanging
# one up would wait for nothing. The commands tests hang up start through this: SIGHUP back
# to its default, then the command in the same process (exec: the pid stays the child's).
HANGUP_AT_DEFAULT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "os.execvp(sys.argv[1], sys.argv[1:])",
]


def as_from_a_terminal(command: list[str]) -> list[str]:
    """`command` started with SIGHUP at its default, as from a terminal (HANGUP_AT_DEFAULT)."""
    return [*HANGUP_AT_DEFAULT, *command]


@dataclass(slots=True)
class Daemon:
    """One run of the daemon on `data_dir`. Its output goes to files (a pipe nobody reads
    while it runs would fill up and block the daemon); `events` holds the log once it ended."""

    data_dir: Path
    process: subprocess.Popen[bytes]
    output: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, data_dir: Path, **env: str) -> Daemon:
        return cls.launch(data_dir, None, None, env)

    @classmethod
    def start_with_config(cls, data_dir: Path, config: Path | None, **env: str) -> Daemon:
        """`quantum-trader run` (with `--config config` when given) in `data_dir`."""
        return cls.launch(data_dir, config, None, env)

    @classmethod
    def start_limited(cls, data_dir: Path, file_size_limit: int, **env: str) -> Daemon:
        """`quantum-trader run` in `data_dir`, no file it writes growing past `file_size_limit`
        bytes (RLIMIT_FSIZE: a write past it fails as on a full disk)."""
        return cls.launch(data_dir, None, file_size_limit, env)

    @classmethod
    def launch(
        cls, data_dir: Path, config: Path | None, file_size_limit: int | None, env: dict[str, str]
    ) -> Daemon:
        data_dir.mkdir(parents=True, exist_ok=True)
        clean = child_env()
        # Port 0: tests run daemons side by side, each status server on a free port.
        settings = {
            "QT_DATA_DIR": str(data_dir),
            "QT_LOG__FORMAT": "json",
            "QT_SERVER__PORT": "0",
            **env,
        }
        runs = len(list(data_dir.glob("run-*.stdout")))
        output = data_dir / f"run-{runs + 1}.stdout"
        with output.open("wb") as stdout, output.with_suffix(".stderr").open("wb") as stderr:
            process = subprocess.Popen(
                as_from_a_terminal(
                    [
                        sys.executable,
                        "-m",
                        "quantum_trader",
                        "run",
                        *(["--config", str(config)] if config else []),
                    ]
                ),
                env={**clean, **settings},
                cwd=data_dir,  # no config/default.toml here: built-in defaults and QT_ variables
                stdout=stdout,
                stderr=stderr,
                preexec_fn=None if file_size_limit is None else limit_files(file_size_limit),
            )
        return cls(data_dir, process, output)

    @property
    def stderr(self) -> str:
        return self.output.with_suffix(".stderr").read_text(errors="replace")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the database; fail at once if the daemon has died meanwhile."""
        if self.process.poll() is not None:
            code = self.process.returncode
            raise AssertionError(f"the daemon exited with {code}: {self.stderr[-2000:]}")
        return query(self.data_dir / DATABASE, sql)

    def wait(self, timeout_s: float) -> int:
        """Wait for the daemon to exit (killed after `timeout_s`) and read the log; return the
        exit code."""
        try:
            self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        lines = self.output.read_text(errors="replace").splitlines()
        self.events = [json.loads(x) for x in lines if x.startswith("{")]
        return self.process.returncode

    def stop(self, signum: signal.Signals, timeout_s: float = 30.0) -> int:
        """Send `signum`, wait for the exit and read the log; return the exit code."""
        self.process.send_signal(signum)
        return self.wait(timeout_s)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]

    def logged_so_far(self, event: str) -> list[dict[str, Any]]:
        """The `event` lines the running daemon has written so far (a line it is still
        writing is left for the next read)."""
        text = self.output.read_text(errors="replace")
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [
            e for e in (json.loads(x) for x in lines if x.startswith("{")) if e["event"] == event
        ]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `quantum-trader` command on the same data directory."""
        return cli(self.data_dir, *args)


def limit_files(size: int) -> Callable[[], None]:
    """For `preexec_fn`: the child may not grow a file past `size` bytes. Python ignores
    SIGXFSZ, so such a write fails with EFBIG instead of killing the process."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def cli(
    data_dir: Path, *args: str, timeout_s: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """A `quantum-trader` command on `data_dir`, with no QT_ variable but `env`'s."""
    clean = child_env()
    return subprocess.run(
        [sys.executable, "-m", "quantum_trader", *args],
        env={**clean, "QT_DATA_DIR": str(data_dir), **env},
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def eventually(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def ignores_terminal_signals(pid: int) -> bool:
    """Whether process `pid` has set SIGINT and SIGHUP, which a terminal sends its whole job,
    to be ignored (Linux: its /proc status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(next(x for x in status.splitlines() if x.startswith("SigIgn:")).split()[1], 16)
    return all(ignored & 1 << (signum - 1) for signum in (signal.SIGINT, signal.SIGHUP))


def as_a_terminal_job(
    command: list[str], cwd: Path, env: dict[str, str], *, nohup: bool = False
) -> subprocess.Popen[str]:
    """`command` started as a terminal starts a job: in a process group of its own, which a
    hangup (`os.killpg(pid, SIGHUP)`) reaches whole; with `nohup`, under nohup."""
    return subprocess.Popen(
        as_from_a_terminal(["nohup", *command] if nohup else command),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def niceness(pid: int) -> int:
    """Process `pid`'s nice value (Linux: its /proc stat, the 19th field)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def ten_lower_than_ours() -> int:
    """The nice value `os.nice(10)` gives a child of this process: Linux caps it at 19, so a
    suite already run under `nice` still expects what the kernel allows."""
    return min(niceness(os.getpid()) + 10, 19)


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the daemon's database while it writes (read-only; WAL lets a reader in)."""
    if not database.exists():
        return []
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return []
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # schema not created yet, or a writer holds a lock
        return []
    finally:
        connection.close()


def saved_state(source: Daemon | Path, namespace: str, key: str) -> dict[str, Any] | None:
    """A payload of the `state` table, from a running daemon or a data directory."""
    sql = f"SELECT payload FROM state WHERE namespace = '{namespace}' AND key = '{key}'"
    rows = source.query(sql) if isinstance(source, Daemon) else query(source / DATABASE, sql)
    return json.loads(rows[0][0]) if rows else None


def paper_exchange(data_dir: Path) -> PaperState:
    state = load_state(data_dir / PAPER_STATE)
    assert state is not None, "the paper exchange left no state file"
    return state
