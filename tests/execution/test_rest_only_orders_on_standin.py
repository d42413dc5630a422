"""REST only (no user-data stream), a few symbols held: each tick reads each held symbol's open
algo orders (GET /fapi/v1/openAlgoOrders with `symbol`, weight 1; Binance's documented 40
without) and the orders of every symbol only at the full check, every
`keeper.rest_check_interval_s` — the read that finds a stray stop of ours on a symbol not held.
Through the ccxt adapter on the stand-in, in its simulated time, the keeper ticked every 5 s as
the monitor loop does.

Was: every tick read every open algo order, 12 × 45 = 540 of positions and orders a minute.
A symbol the tick must read (held, just closed, an order of ours on it) is read that tick, not
at the next full check; one whose read fails keeps its orders as booked: no second stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from loopback import LoopbackBinance
from loopback.faults import Outage
from loopback.fixtures import advance, connect, settle
from loopback.state import START_MS
from standin_keeper import TICK_S
from structlog.testing import capture_logs
from test_exchange_answers import sized
from test_missed_events_on_standin import KEEPER, ticks_in
from test_stop_check_on_standin import our_stops

from quantum_trader.clock import ManualClock, ms_from_utc, utc_from_ms
from quantum_trader.domain import (
    ExchangeSnapshot,
    OrderKind,
    OrderRequest,
    OrderSide,
    Side,
)
from quantum_trader.execution.ccxt_exchange import CcxtExchange
from quantum_trader.gates.settings import PerformanceSettings
from quantum_trader.keeper.ids import ClientOrderIds, Purpose
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.portfolio.ledger import Ledger
from quantum_trader.storage.memory import InMemoryRepository

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
ALGO_ORDERS = "/fapi/v1/openAlgoOrders"
POSITIONS = "/fapi/v3/positionRisk"


@dataclass
class Rig:
    clock: ManualClock
    server: LoopbackBinance
    exchange: CcxtExchange
    keeper: PositionKeeper
    repository: InMemoryRepository

    def now(self) -> datetime:
        return self.clock.now()

    async def tick(self) -> None:
        """One monitor step: 5 s of simulated time, then the keeper's tick, settled."""
        await advance(self.server, TICK_S)
        await self.keeper.tick(self.now())
        await settle(self.server)

    async def rest(self) -> ExchangeSnapshot:
        return await self.exchange.fetch_snapshot(self.now())


@asynccontextmanager
async def keeper_rest_only(symbols: Sequence[str]) -> AsyncIterator[Rig]:
    """A keeper with no streams on a stand-in on a manual clock, holding a LONG of each of
    `symbols` it entered and protected, one tick after the entries."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        try:
            rules = await exchange.load_markets()
            repository = InMemoryRepository()
            ledger = await Ledger.load(
                repository, Decimal(10_000), clock.now(), PerformanceSettings()
            )
            keeper = await PositionKeeper.load(
                exchange, repository, ledger, rules, KEEPER, MonitorSettings()
            )
            rig = Rig(clock, server, exchange, keeper, repository)
            await keeper.tick(rig.now())
            for symbol in symbols:
                mark = server.state.mark(market_id(symbol))
                await keeper.enter(sized(symbol, Side.LONG, mark), rig.now())
                await settle(server)
            await rig.tick()
            held = await rig.rest()
            assert sorted(held.positions) == sorted(symbols)
            assert all(len(our_stops(held, symbol)) == 1 for symbol in symbols)
            yield rig
        finally:
            await exchange.close()


def market_id(symbol: str) -> str:
    return symbol.split(":")[0].replace("/", "")


def order_reads(server: LoopbackBinance) -> tuple[list[str], int]:
    """The market ids of the open algo orders read per symbol, and the reads of all."""
    params = [p for _, path, p in server.requests if path == ALGO_ORDERS]
    return [p["symbol"] for p in params if "symbol" in p], sum("symbol" not in p for p in params)


async def ticks_until_full_check(rig: Rig) -> None:
    """Tick until a tick reads every symbol's orders (the full check)."""
    for _ in range(ticks_in(KEEPER.rest_check_interval_s)):
        rig.server.reset_counts()
        await rig.tick()
        if order_reads(rig.server)[1]:
            return
    raise AssertionError("no full check within rest_check_interval_s")


async def test_a_minute_reads_the_held_symbols_orders_each_tick_and_all_once() -> None:
    """2 held, a minute of 12 ticks from just after a full check: positionRisk 12 × 5, the
    held symbols' orders 11 × 2 and one full check's 40 — 122, was 12 × 45 = 540."""
    async with keeper_rest_only([BTC, ETH]) as rig:
        await ticks_until_full_check(rig)
        rig.server.reset_counts()
        start_ms = ms_from_utc(rig.now()) + 1  # after the full check's tick
        for _ in range(ticks_in(KEEPER.rest_check_interval_s)):
            await rig.tick()
        routes = rig.server.weight_by_route(start_ms, ms_from_utc(rig.now()) + 1)
        per_symbol, of_all = order_reads(rig.server)

    assert of_all == 1
    assert sorted(per_symbol) == sorted(["BTCUSDT", "ETHUSDT"] * 11)
    assert routes[f"GET {POSITIONS}"] == 12 * 5
    assert routes[f"GET {ALGO_ORDERS}"] == 11 * 2 + 40


async def test_with_five_symbols_held_every_tick_reads_every_symbols_orders() -> None:
    """Above 4 (STOPS_READ_PER_SYMBOL_AT_MOST) nothing changes: one read of all a tick."""
    held = [BTC, ETH, "BCH/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT"]
    async with keeper_rest_only(held) as rig:
        rig.server.reset_counts()
        for _ in range(3):
            await rig.tick()
        assert order_reads(rig.server) == ([], 3)


async def test_a_stop_cancelled_by_hand_is_replaced_at_the_next_tick() -> None:
    async with keeper_rest_only([BTC, ETH]) as rig:
        await ticks_until_full_check(rig)
        [stop] = our_stops(await rig.rest(), BTC)
        await rig.exchange.cancel_conditional_order(BTC, stop.client_order_id)
        await settle(rig.server)
        rig.server.reset_counts()

        await rig.tick()

        assert order_reads(rig.server)[1] == 0  # read per symbol, not at a full check
        [again] = our_stops(await rig.rest(), BTC)
        assert again.client_order_id != stop.client_order_id


async def test_a_stray_stop_of_ours_on_a_symbol_not_held_is_cancelled_at_the_full_check() -> None:
    """A stop of ours the keeper does not know (a run before it lost it) on SOL, not held: no
    tick reads SOL's orders alone; the full check lists it and the keeper cancels it."""
    async with keeper_rest_only([BTC, ETH]) as rig:
        await ticks_until_full_check(rig)
        stray_id = ClientOrderIds(99).next(Purpose.STOP, SOL, rig.now())
        stray = OrderRequest(
            stray_id, SOL, OrderSide.SELL, OrderKind.STOP_MARKET, Decimal(1), Decimal(100), True
        )
        await rig.exchange.place_order(stray)
        await settle(rig.server)
        assert our_stops(await rig.rest(), SOL)

        await ticks_until_full_check(rig)

        assert our_stops(await rig.rest(), SOL) == []
        assert "SOLUSDT" not in order_reads(rig.server)[0]


async def test_a_position_closed_by_hand_has_its_stop_cancelled_at_the_next_tick() -> None:
    """BTC closed by a person: BTC is no longer held but the book's stop names it, so its
    orders are read that tick and the stop released, not left to the full check."""
    async with keeper_rest_only([BTC, ETH]) as rig:
        await ticks_until_full_check(rig)
        held = (await rig.rest()).positions[BTC]
        close = OrderRequest("web_close", BTC, OrderSide.SELL, OrderKind.MARKET, held.quantity)
        await rig.exchange.place_order(close)
        await settle(rig.server)
        rig.server.reset_counts()

        await rig.tick()

        after = await rig.rest()
        assert BTC not in after.positions
        assert our_stops(after, BTC) == []
        assert BTC not in rig.keeper.positions


async def test_a_position_opened_by_hand_is_protected_at_the_next_tick() -> None:
    async with keeper_rest_only([BTC]) as rig:
        await ticks_until_full_check(rig)
        opened = OrderRequest("web_open", SOL, OrderSide.BUY, OrderKind.MARKET, Decimal(2))
        await rig.exchange.place_order(opened)
        await settle(rig.server)
        rig.server.reset_counts()

        await rig.tick()

        per_symbol, of_all = order_reads(rig.server)
        assert (sorted(per_symbol), of_all) == (["BTCUSDT", "SOLUSDT"], 0)
        [stop] = our_stops(await rig.rest(), SOL)
        assert stop.quantity == Decimal(2)


async def test_a_failed_read_of_a_held_symbols_orders_places_no_second_stop() -> None:
    """BTC's orders unreadable (503 at every try) between full checks: the tick keeps BTC's
    orders as booked — its stop neither placed again nor cancelled — said in one warning a
    tick naming BTC; ETH's orders are still read."""
    async with keeper_rest_only([BTC, ETH]) as rig:
        await ticks_until_full_check(rig)
        [stop] = our_stops(await rig.rest(), BTC)
        now_ms = ms_from_utc(rig.now())
        rig.server.outage(Outage(ALGO_ORDERS, now_ms, now_ms + 3_600_000, symbol="BTCUSDT"))
        rig.server.reset_counts()

        with capture_logs() as logs:
            for _ in range(3):
                await rig.tick()

        assert our_stops(await rig.rest(), BTC) == [stop]
        failed = [e for e in logs if e["event"] == "open_orders_read_failed"]
        assert len(failed) == 3
        assert all(e["symbols"] == [BTC] and e["log_level"] == "warning" for e in failed)
        assert "ETHUSDT" in order_reads(rig.server)[0]
        assert rig.keeper.book.blocked() == {}
