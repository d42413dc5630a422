"""testnet mode against the loopback stand-in: an entry whose trades cannot be read when it
fills (GET /fapi/v1/userTrades down; Binance's order answer carries no commission) has its
fee booked once they can be, on a later keeper tick; a close whose exit's trades cannot be
read has its trade amended by that fee then."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

from loopback import Fault, LoopbackBinance
from loopback.faults import Outage
from loopback.fixtures import (
    clock_into_bar,
    daemon_settings,
    loopback,
    open_runtime_on,
)
from structlog.testing import capture_logs

from quantum_trader.clock import utc_from_ms
from quantum_trader.domain import ExitReason

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"


async def test_an_entrys_fee_unread_at_its_fill_is_booked_once_the_trades_answer(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    settings = daemon_settings(tmp_path)
    clock = clock_into_bar(loopback)
    now_ms = loopback.state.now_ms
    loopback.outage(Outage("/fapi/v1/userTrades", now_ms, now_ms + 60_000, method="GET"))
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
        with capture_logs() as logs:
            summary = await runtime.core.executor.run_cycle(clock.now())
        assert summary.opened == 1
        said = [e for e in logs if e["event"] == "fills_read_failed"]
        assert [e["log_level"] for e in said] == ["warning"]
        position = runtime.core.keeper.positions[BTC]
        entry_trades = [t for t in loopback.state.trades if t["side"] == "BUY"]
        fee = sum((Decimal(t["commission"]) for t in entry_trades), Decimal(0))
        assert fee > 0
        assert position.fees_usdt == 0  # booked from the answer: no commission in it

        with capture_logs() as logs:
            await runtime.core.keeper.tick(clock.now())  # still down: nothing to add yet
        assert runtime.core.keeper.positions[BTC].fees_usdt == 0
        # Said once as a warning when booked; each tick's read again is a debug line.
        retried = [e for e in logs if e["event"] == "fills_read_failed"]
        assert retried
        assert {e["log_level"] for e in retried} == {"debug"}

        loopback.state.now_ms = now_ms + 70_000  # the outage is over
        clock.set(utc_from_ms(loopback.state.now_ms))
        with capture_logs() as logs:
            await runtime.core.keeper.tick(clock.now())
            await runtime.core.keeper.tick(clock.now())  # read once: not added twice
        assert runtime.core.keeper.positions[BTC].fees_usdt == fee
        assert [e["event"] for e in logs if e["event"] == "fees_read"] == ["fees_read"]


async def test_a_close_whose_exit_fee_is_unread_is_amended_once_the_trades_answer(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """The market exit's trades cannot be read at its answer nor at the close: its trade is
    booked without that fee, in the SQLite ledger, then amended on the tick that reads it."""
    settings = daemon_settings(tmp_path)
    clock = clock_into_bar(loopback)
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
        assert (await runtime.core.executor.run_cycle(clock.now())).opened == 1
        keeper, repository = runtime.core.keeper, runtime.repository
        entry_fee = keeper.positions[BTC].fees_usdt
        assert entry_fee > 0  # read at once: the trades answered
        now_ms = loopback.state.now_ms
        loopback.outage(Outage("/fapi/v1/userTrades", now_ms, now_ms + 60_000, method="GET"))
        with capture_logs() as logs:
            await keeper.close_all(ExitReason.MANUAL, clock.now())
        [booked] = await repository.closed_trades()
        assert booked.fees_usdt == entry_fee
        assert [e["event"] for e in logs if e["event"] == "trade_fees_incomplete"] == [
            "trade_fees_incomplete"
        ]

        loopback.state.now_ms = now_ms + 70_000  # the outage is over
        clock.set(utc_from_ms(loopback.state.now_ms))
        with capture_logs() as logs:
            await keeper.tick(clock.now())
            await keeper.tick(clock.now())  # read once: not amended twice
        exit_trades = [t for t in loopback.state.trades if t["side"] == "SELL"]
        exit_fee = sum((Decimal(t["commission"]) for t in exit_trades), Decimal(0))
        assert exit_fee > 0
        [trade] = await repository.closed_trades()
        assert trade.fees_usdt == entry_fee + exit_fee
        assert trade.pnl_usdt == booked.pnl_usdt - exit_fee
        amended = [e for e in logs if e["event"] == "trade_fees_amended"]
        assert [e["fee_usdt"] for e in amended] == [str(exit_fee)]
        assert runtime.core.ledger.stats[BTC].pnl_usdt == float(trade.pnl_usdt)


async def test_an_entry_whose_trades_answer_is_malformed_is_booked_and_its_fee_read_later(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """userTrades answers HTTP 200 with a trade whose commission is "NaN": the ccxt adapter
    cannot read it (MarketDataError); the entry is booked and protected from the order's own
    answer, one `fills_read_failed` warning says why, and the next tick reads its fee."""
    settings = daemon_settings(tmp_path)
    clock = clock_into_bar(loopback)
    row = {"id": 1, "side": "BUY", "qty": "0.010", "price": "100", "commission": "NaN",
           "commissionAsset": "USDT", "time": loopback.state.now_ms}  # fmt: skip
    loopback.inject(Fault("/fapi/v1/userTrades", status=200, body=json.dumps([row]), method="GET"))
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings, stack, clock=clock)
        with capture_logs() as logs:
            assert (await runtime.core.executor.run_cycle(clock.now())).opened == 1
        keeper = runtime.core.keeper
        [said] = [e for e in logs if e["event"] == "fills_read_failed"]
        assert said["log_level"] == "warning"
        assert "not finite" in said["error"]
        assert keeper.positions[BTC].stop_order_id is not None
        assert keeper.positions[BTC].fees_usdt == 0

        await keeper.tick(clock.now())
        fee = sum((Decimal(t["commission"]) for t in loopback.state.trades), Decimal(0))
        assert fee > 0
        assert keeper.positions[BTC].fees_usdt == fee
