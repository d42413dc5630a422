"""Where the keeper last read a symbol flat before our entry there, saved with the entry
(keeper/flat_before.py): read back at a start for the position it opened, deleted once that
position is gone, dropped with one line when it cannot be read back."""

from __future__ import annotations

from structlog.testing import capture_logs
from test_keeper_external_exits import BTC, by_hand, opened
from test_keeper_properties import Harness

from quantum_trader.domain import OrderSide
from quantum_trader.keeper.flat_before import FLAT_BEFORE


async def test_an_entry_saves_the_flat_read_before_it_and_a_start_deletes_it_once_closed() -> None:
    harness = await Harness.start()
    await harness.tick()  # BTC read flat
    read_at = harness.now
    quantity = await opened(harness)
    entry = harness.keeper.positions[BTC].entry_order_id
    saved = await harness.repository.load_state(FLAT_BEFORE)
    assert saved == {BTC: {"entry": entry, "at": read_at.isoformat()}}

    await harness.restart()  # the position still held: kept
    assert await harness.repository.load_state(FLAT_BEFORE) == saved

    await by_hand(harness, "web_closed_71", OrderSide.SELL, quantity)
    await harness.tick()
    assert harness.keeper.positions == {}
    await harness.restart()  # its position gone: deleted
    assert await harness.repository.load_state(FLAT_BEFORE) == {}


async def test_a_saved_flat_read_that_cannot_be_read_back_is_said_and_dropped() -> None:
    harness = await Harness.start()
    await harness.tick()
    await opened(harness)
    entry = harness.keeper.positions[BTC].entry_order_id
    await harness.repository.save_state(FLAT_BEFORE, BTC, {"entry": entry, "at": "yesterday"})
    with capture_logs() as logs:
        await harness.restart()

    [said] = [e for e in logs if e["event"] == "flat_before_unreadable"]
    assert said["symbol"] == BTC
    assert "read from its entry's fill" in said["detail"]
    assert await harness.repository.load_state(FLAT_BEFORE) == {}
    assert harness.keeper.positions[BTC].entry_order_id == entry  # the position as it was
