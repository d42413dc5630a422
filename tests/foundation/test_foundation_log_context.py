"""The log context a `with bound_context(...)` block binds is restored when it ends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from structlog.contextvars import bind_contextvars, clear_contextvars, get_contextvars

from quantum_trader.log import bound_context


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
