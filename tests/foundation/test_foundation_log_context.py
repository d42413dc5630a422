"""The log context a `with bound_context(...)` block binds is restored when it ends; a module's
logger keeps its methods where structlog caches it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars
from structlog.testing import capture_logs

from quantum_trader.log import bound_context, get_logger


@pytest.fixture(autouse=True)
def _clean_context() -> None:
    clear_contextvars()


def test_a_block_binds_its_keys_and_restores_the_previous_values_after() -> None:
    bind_contextvars(cycle_id="c1")
    with bound_context(cycle_id="c2", symbol="BTC/USDT:USDT"):
        assert get_contextvars() == {"cycle_id": "c2", "symbol": "BTC/USDT:USDT"}
        with bound_context(symbol="ETH/USDT:USDT"):
            assert get_contextvars()["symbol"] == "ETH/USDT:USDT"
        assert get_contextvars()["symbol"] == "BTC/USDT:USDT"
    assert get_contextvars() == {"cycle_id": "c1"}


def test_the_context_is_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), bound_context(symbol="BTC/USDT:USDT"):
        raise RuntimeError("boom")
    assert get_contextvars() == {}


def test_concurrent_tasks_keep_their_own_context_across_awaits() -> None:
    async def cycle(name: str, seen: list[str]) -> None:
        with bound_context(cycle_id=name):
            await asyncio.sleep(0)
            seen.append(get_contextvars()["cycle_id"])
        seen.append(str(get_contextvars().get("cycle_id")))

    async def both() -> list[str]:
        seen: list[str] = []
        await asyncio.gather(cycle("c1", seen), cycle("c2", seen))
        return seen

    assert sorted(asyncio.run(both())) == ["None", "None", "c1", "c2"]


# A cycle binds its instant itself as `sim_time` (cycle.py); a written line carries its ISO
# text, as when the cycle bound the text.
CYCLE_LINE = """
from datetime import datetime, timezone
from quantum_trader.log import bound_context, configure_logging, get_logger
configure_logging("json", "INFO")
log = get_logger("test")
now = datetime(2025, 3, 1, 0, 5, tzinfo=timezone.utc)
with bound_context(cycle_id="c7", sim_time=now):
    log.info("inside")
log.info("outside", sim_time="as given")
"""


def test_a_cycles_instant_is_written_as_iso_text() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CYCLE_LINE], capture_output=True, text=True, check=True, timeout=60
    )
    inside, outside = (json.loads(line) for line in done.stdout.splitlines())
    assert (inside["cycle_id"], inside["sim_time"]) == ("c7", "2025-03-01T00:05:00+00:00")
    assert (outside.get("cycle_id"), outside["sim_time"]) == (None, "as given")


# A logger of a process that configured logging (which caches each module's logger on first
# use) keeps each method it was asked for: structlog's proxy would read that same method at
# every call, through a failed lookup (≈ 7,800 instructions in 3.11). The lines are the same.
KEPT = """
from quantum_trader.log import configure_logging, get_logger
log = get_logger("test")
configure_logging("json", "WARNING")
log.info("dropped")
log.warning("written", n=1)
print(sorted(name for name in vars(log) if not name.startswith("_")))
"""


def test_a_configured_logger_keeps_its_methods_and_writes_the_same_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", KEPT], capture_output=True, text=True, check=True, timeout=60
    )
    written, kept = done.stdout.splitlines()
    line = json.loads(written)
    assert (line["event"], line["component"], line["n"], line["level"]) == (
        "written",
        "test",
        1,
        "warning",
    )
    assert kept == "['info', 'warning']"


def test_an_uncached_logger_reads_the_configuration_at_every_call() -> None:
    log = get_logger("test")
    log.info("before")
    with capture_logs() as logs:
        log.info("seen", n=1)
    assert logs == [{"component": "test", "n": 1, "event": "seen", "log_level": "info"}]
    assert "info" not in vars(log)
