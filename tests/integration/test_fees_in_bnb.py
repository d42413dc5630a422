"""testnet mode against the loopback stand-in, on an account that pays fees with BNB (every
trade's commission in BNB): the entry's and the exit's fees are booked in USDT at BNBUSDT's
price in their minute, and a price that cannot be read leaves the fee unread, read and added
(or the closed trade amended) on a later keeper tick, as a failed read of the trades is."""

from __future__ import annotations

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

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.config import Settings
from quantum_trader.domain import ExitReason
from quantum_trader.keeper.booking import stored_sum

__all__ = ["loopback"]
BTC = "BTC/USDT:USDT"
MINUTE_MS = 60_000


def settings_in(tmp_path: Path) -> Settings:
    return daemon_settings(tmp_path)


def usdt_fee(server: LoopbackBinance, side: str) -> Decimal:
    """The BNB commissions of the trades on `side`, each at the close of BNBUSDT's 1m candle
    of its minute (as the stand-in serves it)."""
    total = Decimal(0)
    for trade in (t for t in server.state.trades if t["side"] == side):
        assert trade["commissionAsset"] == "BNB"
        minute = trade["time"] - trade["time"] % MINUTE_MS
        params = {"symbol": "BNBUSDT", "interval": "1m", "startTime": str(minute), "limit": "1"}
        [candle] = server.state.klines(params)
        total += Decimal(trade["commission"]) * Decimal(candle[4])
    return total


def move_to(server: LoopbackBinance, clock: ManualClock, now_ms: int) -> None:
    server.state.now_ms = now_ms
    clock.set(utc_from_ms(now_ms))


async def test_an_entry_and_exit_paid_in_bnb_book_their_fees_in_usdt(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    loopback.state.commission_asset = "BNB"
    clock = clock_into_bar(loopback)
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings_in(tmp_path), stack, clock=clock)
        with capture_logs() as logs:
            assert (await runtime.core.executor.run_cycle(clock.now())).opened == 1
        keeper = runtime.core.keeper
        entry_fee = usdt_fee(loopback, "BUY")
        position = keeper.positions[BTC]
        assert position.fees_usdt == entry_fee > 0
        # Binance's taker rate less its 10 % BNB discount, to the 8 decimals of the BNB paid.
        notional = position.quantity * position.entry_price
        assert abs(entry_fee - notional * Decimal("0.00036")) < Decimal("0.00001")
        assert [e["event"] for e in logs if e["event"] == "fee_converted"] == ["fee_converted"]
        assert not [e for e in logs if e["event"] in ("fee_not_in_usdt", "fills_read_failed")]

        move_to(loopback, clock, loopback.state.now_ms + MINUTE_MS)  # the exit's own minute
        await keeper.close_all(ExitReason.MANUAL, clock.now())
        [trade] = await runtime.repository.closed_trades()
        exit_fee = usdt_fee(loopback, "SELL")
        assert exit_fee > 0
        assert trade.fees_usdt == stored_sum(entry_fee + exit_fee)  # the row's 8 decimals
        gross = (trade.exit_price - trade.entry_price) * trade.quantity
        assert trade.pnl_usdt == gross - trade.fees_usdt - trade.funding_usdt
        assert keeper.book.fees_unread == {}


async def test_an_entrys_bnb_price_unread_at_its_fill_is_booked_once_it_can_be_read(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """BNBUSDT's candles are out (HTTP 503) when the entry fills: its fills are not read (no
    fee of 0), and the tick after the outage reads its price and adds the fee once."""
    loopback.state.commission_asset = "BNB"
    clock = clock_into_bar(loopback)
    now_ms = loopback.state.now_ms
    down = Outage("/fapi/v1/klines", now_ms, now_ms + 60_000, method="GET", symbol="BNBUSDT")
    loopback.outage(down)
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings_in(tmp_path), stack, clock=clock)
        with capture_logs() as logs:
            assert (await runtime.core.executor.run_cycle(clock.now())).opened == 1
        keeper = runtime.core.keeper
        [said] = [e for e in logs if e["event"] == "fills_read_failed"]
        assert said["log_level"] == "warning"
        assert keeper.positions[BTC].fees_usdt == 0
        assert keeper.positions[BTC].stop_order_id is not None  # booked and protected

        await keeper.tick(clock.now())  # still down: nothing added
        assert keeper.positions[BTC].fees_usdt == 0

        move_to(loopback, clock, now_ms + 70_000)  # the outage is over
        with capture_logs() as logs:
            await keeper.tick(clock.now())
            await keeper.tick(clock.now())  # read once: not added twice
        assert keeper.positions[BTC].fees_usdt == usdt_fee(loopback, "BUY") > 0
        assert [e["event"] for e in logs if e["event"] == "fees_read"] == ["fees_read"]


async def test_an_exit_whose_bnb_price_answer_is_malformed_amends_its_trade_later(
    loopback: LoopbackBinance, tmp_path: Path
) -> None:
    """BNBUSDT's klines answer HTTP 200 with no candle (`[]`) at the exit's answer and at the
    close: the trade is booked without the exit's fee, then amended by it on the next tick."""
    loopback.state.commission_asset = "BNB"
    clock = clock_into_bar(loopback)
    async with AsyncExitStack() as stack:
        runtime = await open_runtime_on(loopback, settings_in(tmp_path), stack, clock=clock)
        assert (await runtime.core.executor.run_cycle(clock.now())).opened == 1
        keeper, repository = runtime.core.keeper, runtime.repository
        entry_fee = keeper.positions[BTC].fees_usdt
        assert entry_fee == usdt_fee(loopback, "BUY") > 0

        move_to(loopback, clock, loopback.state.now_ms + MINUTE_MS)  # a minute not read yet
        for _ in range(2):  # the exit's answer, and the close's read once more
            loopback.inject(Fault("/fapi/v1/klines", status=200, body="[]", symbol="BNBUSDT"))
        with capture_logs() as logs:
            await keeper.close_all(ExitReason.MANUAL, clock.now())
        [booked] = await repository.closed_trades()
        assert booked.fees_usdt == stored_sum(entry_fee)
        assert [e["event"] for e in logs if e["event"] == "trade_fees_incomplete"] == [
            "trade_fees_incomplete"
        ]
        assert "no candle" in next(e for e in logs if e["event"] == "fills_read_failed")["error"]

        with capture_logs() as logs:
            await keeper.tick(clock.now())
            await keeper.tick(clock.now())  # read once: not amended twice
        exit_fee = usdt_fee(loopback, "SELL")
        assert exit_fee > 0
        [trade] = await repository.closed_trades()
        assert trade.fees_usdt == stored_sum(booked.fees_usdt + exit_fee)
        assert trade.pnl_usdt == stored_sum(booked.pnl_usdt - exit_fee)
        amended = [e for e in logs if e["event"] == "trade_fees_amended"]
        assert [e["fee_usdt"] for e in amended] == [str(exit_fee)]
