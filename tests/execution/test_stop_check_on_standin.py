"""A stop of ours cancelled by hand on Binance, its user-data event lost, with few symbols held:
the keeper's check of positions every `keeper.rest_position_check_s` also reads each held
symbol's open conditional orders (GET /fapi/v1/openAlgoOrders with `symbol`, weight 1 each;
Binance's documented 40 without) and compares them with the mirror's; a difference is the full
check at once. Through the ccxt adapter and BinanceStreams on the stand-in, in its simulated
time, the keeper ticked every 5 s as the monitor loop does.

Was: the positions do not show a cancelled stop, so only the full check found it, within
`keeper.rest_check_interval_s` (12 ticks, 11 here), the position unprotected meanwhile. Above
4 held symbols the orders are not read per symbol (4 … 20 weight a check) and the old bound
stands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from loopback import LoopbackBinance
from loopback.faults import Outage
from structlog.testing import capture_logs
from test_missed_events_on_standin import KEEPER, Rig, keeper_on_streams, ticks_in

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import ExchangeSnapshot, Order, OrderKind
from quantum_trader.keeper.ids import is_ours

# Symbols whose quantity step (0.001 … 0.1) `sized`'s 300 USDT entry fits; BTC's stop is cancelled.
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT", "BCH/USDT:USDT", "BNB/USDT:USDT", "XRP/USDT:USDT")
BTC = SYMBOLS[0]
ALGO_ORDERS = "/fapi/v1/openAlgoOrders"


def market_id(symbol: str) -> str:
    return symbol.split(":")[0].replace("/", "")


@asynccontextmanager
async def keeper_holding(symbols: Sequence[str]) -> AsyncIterator[Rig]:
    """The missed-events rig holding a LONG of each of `symbols`, each covered by its stop."""
    async with keeper_on_streams(symbols) as rig:
        held = await rig.rest()
        assert sorted(held.positions) == sorted(symbols)
        assert all(covered(held, symbol) for symbol in symbols)
        yield rig


def our_stops(snapshot: ExchangeSnapshot, symbol: str) -> list[Order]:
    return [
        o
        for o in snapshot.open_conditional_orders
        if o.symbol == symbol
        and is_ours(o.client_order_id)
        and o.kind is OrderKind.STOP_MARKET
        and o.reduce_only
    ]


def covered(snapshot: ExchangeSnapshot, symbol: str) -> bool:
    """Whether what the exchange holds of `symbol` has a reduce-only stop of ours for all of it."""
    held = snapshot.positions.get(symbol)
    if held is None:
        return True
    return any(
        o.side is held.side.exit_order_side and o.quantity >= held.quantity
        for o in our_stops(snapshot, symbol)
    )


async def ticks_until_covered(rig: Rig, symbol: str, max_ticks: int) -> int:
    for ticks in range(1, max_ticks + 1):
        await rig.tick()
        if covered(await rig.rest(), symbol):
            return ticks
    raise AssertionError(f"{symbol} held without a stop of ours after {max_ticks} keeper ticks")


def symbol_reads(server: LoopbackBinance) -> list[str]:
    """The market ids of the open algo orders read per symbol, in order."""
    return [p["symbol"] for m, path, p in server.requests if path == ALGO_ORDERS and "symbol" in p]


async def cancel_unseen(rig: Rig, symbol: str) -> Order:
    """A person cancels the stop of ours on `symbol`; its user-data events are dropped."""
    [stop] = our_stops(await rig.rest(), symbol)
    await rig.unseen(rig.exchange.cancel_conditional_order(symbol, stop.client_order_id))
    assert not covered(await rig.rest(), symbol)
    mirrored = rig.streams.snapshot(rig.now())
    assert mirrored is not None
    assert our_stops(mirrored, symbol) == [stop]  # the stream did not show the cancel
    return stop


def test_the_intervals_the_bounds_below_assume() -> None:
    assert ticks_in(KEEPER.rest_position_check_s) == 4
    assert ticks_in(KEEPER.rest_check_interval_s) == 12


@pytest.mark.parametrize("held", [1, 2, 4])
async def test_a_stop_cancelled_by_hand_unseen_is_replaced_within_the_position_check(
    held: int,
) -> None:
    """With 1 … 4 symbols held, the stop is placed again within `rest_position_check_s` of
    keeper ticks (4, cancelled just after a check; was 8 here, at the full check), found as
    a mirror difference in the open orders; each held symbol's orders read alone, weight 1."""
    async with keeper_holding(SYMBOLS[:held]) as rig:
        for _ in range(3):  # to 20 s: the position check has just run, the worst time to cancel
            await rig.tick()
        stop = await cancel_unseen(rig, BTC)
        rig.server.reset_counts()

        with capture_logs() as logs:
            ticks = await ticks_until_covered(rig, BTC, ticks_in(KEEPER.rest_check_interval_s))

        assert ticks <= ticks_in(KEEPER.rest_position_check_s)
        [differs] = [e for e in logs if e["event"] == "stream_mirror_differs"]
        assert stop.client_order_id in differs["detail"]
        assert "open orders" in differs["detail"]
        [again] = our_stops(await rig.rest(), BTC)
        assert again.client_order_id != stop.client_order_id
        ids = {market_id(symbol) for symbol in SYMBOLS[:held]}
        assert set(symbol_reads(rig.server)) == ids
        after = await rig.rest()
        assert all(covered(after, symbol) for symbol in SYMBOLS[:held])


async def test_with_five_symbols_held_the_orders_are_not_read_per_symbol_the_full_check_bounds(
) -> None:  # fmt: skip
    """Above 4 held symbols nothing changes: no read per symbol, the full check (every
    `rest_check_interval_s`) finds the cancelled stop, after the position check's bound."""
    async with keeper_holding(SYMBOLS) as rig:
        stop = await cancel_unseen(rig, BTC)
        rig.server.reset_counts()
        start_ms = ms_from_utc(rig.now())

        ticks = await ticks_until_covered(rig, BTC, ticks_in(KEEPER.rest_check_interval_s))

        assert ticks > ticks_in(KEEPER.rest_position_check_s)
        assert symbol_reads(rig.server) == []
        routes = rig.server.weight_by_route(start_ms, ms_from_utc(rig.now()) + 1)
        assert set(routes) >= {"GET /fapi/v3/positionRisk", f"GET {ALGO_ORDERS}"}
        [again] = our_stops(await rig.rest(), BTC)
        assert again.client_order_id != stop.client_order_id


async def test_a_failed_read_of_a_symbols_orders_leaves_the_mirror_said_once_a_check() -> None:
    """BTC's orders unreadable (503 at every try), BTC's stop cancelled unseen: one warning at
    each position check naming BTC, the tick goes on from the mirror, and the full check
    places the stop again (the old bound); ETH's orders are still read."""
    async with keeper_holding(SYMBOLS[:2]) as rig:
        now_ms = ms_from_utc(rig.now())
        rig.server.outage(Outage(ALGO_ORDERS, now_ms, now_ms + 3_600_000, symbol="BTCUSDT"))
        await cancel_unseen(rig, BTC)
        rig.server.reset_counts()

        with capture_logs() as logs:
            ticks = await ticks_until_covered(rig, BTC, ticks_in(KEEPER.rest_check_interval_s))

        assert ticks > ticks_in(KEEPER.rest_position_check_s)
        failed = [e for e in logs if e["event"] == "stop_check_failed"]
        assert 1 <= len(failed) <= 2  # the checks at 20 s and 40 s, one line each
        assert all(e["symbols"] == [BTC] and e["log_level"] == "warning" for e in failed)
        assert "ETHUSDT" in symbol_reads(rig.server)
