"""The log context a `with bound_context(...)` block binds is restored when it ends."""

from __future__ import annotations

import asyncio

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
