"""BinanceStreams against the stand-in's websockets, in accelerated (manual) time: seeding,
mark prices, the mirror, reconnects, silence, duplicated and out-of-order events, listen-key
keep-alive and expiry, a missed event found by a REST snapshot, and an orderly stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from loopback import Fault, LoopbackBinance, MarkPath, Outage, RandomStreamFaults
from loopback.fixtures import advance, advance_until, connect, running_streams, settle, streams_on
from loopback.state import START_MS
from structlog.testing import capture_logs
from test_ccxt_exchange import BTC, entry, stop

from quantum_trader.clock import ManualClock, utc_from_ms
from quantum_trader.domain import ExchangeSnapshot, OrderStatus, SnapshotSource
from quantum_trader.errors import OperatorActionRequired
from quantum_trader.execution.binance_streams import BinanceStreams
from quantum_trader.execution.ccxt_exchange import CcxtExchange

ETH = "ETH/USDT:USDT"
SILENCE_S = 5.0


@dataclass
class Rig:
    clock: ManualClock
    server: LoopbackBinance
    exchange: CcxtExchange
    streams: BinanceStreams
    stopping: asyncio.Event
    task: asyncio.Task[None]

    def snapshot(self) -> ExchangeSnapshot | None:
        return self.streams.snapshot(self.clock.now())

    async def rest_truth(self) -> ExchangeSnapshot:
        return await self.exchange.fetch_snapshot(self.clock.now())

    async def until_usable(self, what: str = "usable", max_s: float = 30) -> None:
        await advance_until(self.server, lambda: self.streams.health().usable, max_s, what)

    async def settle(self, probe: Callable[[], object], what: str) -> None:
        """Let events reach the mirror: a few simulated seconds at most."""
        await advance_until(self.server, probe, 5, what, step_s=0.5)

    async def mirrors_rest(self) -> None:
        truth = await self.rest_truth()
        await self.settle(lambda: same_account(self.snapshot(), truth), "mirroring REST")


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        await exchange.load_markets()
        await exchange.set_leverage(BTC, 5)
        streams = streams_on(server, exchange, stream_silence_s=SILENCE_S)
        stopping = asyncio.Event()
        task = asyncio.create_task(streams.run(stopping))
        try:
            built = Rig(clock, server, exchange, streams, stopping, task)
            await built.until_usable("seeded at start")
            yield built
        finally:
            stopping.set()
            await asyncio.wait_for(task, 10)
            await exchange.close()


def same_account(mirror: ExchangeSnapshot | None, rest: ExchangeSnapshot) -> bool:
    return mirror is not None and (
        mirror.positions == rest.positions
        and {o.client_order_id: o.status for o in mirror.open_conditional_orders}
        == {o.client_order_id: o.status for o in rest.open_conditional_orders}
    )


async def test_the_mirror_is_seeded_then_follows_orders_and_positions(rig: Rig) -> None:
    empty = rig.snapshot()
    assert empty is not None
    assert empty.source is SnapshotSource.STREAM
    assert (empty.positions, empty.open_conditional_orders) == ({}, ())
    rig.streams.updated.clear()
    await rig.exchange.place_order(entry())
    await rig.exchange.place_order(stop())
    await rig.mirrors_rest()
    assert rig.streams.updated.is_set()
    mirrored = rig.snapshot()
    assert mirrored is not None
    assert mirrored.positions[BTC].leverage == 5
    assert mirrored.orders["qteBTC1"].status is OrderStatus.FILLED
    # one connection of each kind; they open concurrently, so in either order
    assert sorted(h.split()[0] for h in rig.server.streams.handshakes) == ["market", "user"]


async def test_mark_prices_of_every_symbol_arrive_each_second(rig: Rig) -> None:
    rig.server.state.mark_path = MarkPath(seed=7)
    symbol_by_id = rig.exchange.symbol_by_id
    symbols = list(symbol_by_id.values())

    def on_the_path() -> bool:
        path = {s: rig.server.state.mark(i) for i, s in symbol_by_id.items()}
        return rig.streams.mark_prices(symbols, rig.clock.now()) == path

    await rig.settle(on_the_path, "the path's prices")
    streamed = rig.streams.mark_prices(symbols, rig.clock.now())
    assert streamed == await rig.exchange.fetch_mark_prices(symbols)  # same instant, same path
    await advance(rig.server, 1)
    await rig.settle(on_the_path, "the next second's prices")
    moved = rig.streams.mark_prices(symbols, rig.clock.now())
    assert moved is not None
    assert moved != streamed
    assert rig.streams.mark_prices(["NOPE/USDT:USDT"], rig.clock.now()) is None


async def test_a_triggered_stop_reaches_the_mirror(rig: Rig) -> None:
    await rig.exchange.place_order(entry())
    await rig.exchange.place_order(stop("qtsBTC1", "95000"))
    rig.server.state.marks["BTCUSDT"] = Decimal("94900.0")  # triggers on the next second

    def stopped_out() -> bool:  # the stop's end (ALGO_UPDATE FINISHED) follows the position's
        mirrored = rig.snapshot()
        return mirrored is not None and mirrored.positions == {} and "qtsBTC1" in mirrored.orders

    await rig.settle(stopped_out, "stopped out, the stop's fill mirrored")
    mirrored = rig.snapshot()
    assert mirrored is not None
    assert mirrored.positions == {}
    assert mirrored.open_conditional_orders == ()
    fired = mirrored.orders["qtsBTC1"]
    assert (fired.status, fired.filled_quantity) == (OrderStatus.FILLED, Decimal("0.010"))
    assert fired.average_price == Decimal("94900.0")
    assert fired.detail  # the actual order's id


async def test_a_disconnect_is_reconnected_and_the_gap_closed_by_rest(rig: Rig) -> None:
    assert await rig.server.streams.disconnect() == 2
    await rig.exchange.place_order(entry())  # while no user stream is connected
    await settle(rig.server)  # the streams have seen the disconnect; no time has passed
    assert rig.snapshot() is None  # not usable until reseeded
    waited = await advance_until(rig.server, lambda: rig.streams.health().usable, 30, "reconnected")
    assert waited <= 3  # the first backoff is 1 s
    assert same_account(rig.snapshot(), await rig.rest_truth())
    assert rig.streams.health().reconnects == 2
    assert len(rig.server.streams.handshakes) == 4


async def test_a_silent_market_stream_is_detected_and_replaced(rig: Rig) -> None:
    rig.server.streams.silence("market", 60)
    with capture_logs() as logs:
        await advance_until(
            rig.server,
            lambda: rig.streams.mark_prices([BTC], rig.clock.now()) is None,
            SILENCE_S + 2,
            "stale",
        )
        await rig.settle(
            lambda: any(e.get("reason", "").startswith("silent") for e in logs), "detected"
        )
    await advance(rig.server, 60)  # the stand-in speaks again
    await advance_until(
        rig.server,
        lambda: rig.streams.mark_prices([BTC], rig.clock.now()) == {BTC: Decimal("100000.0")},
        70,
        "prices again",
    )
    assert rig.streams.health().reconnects >= 1
    assert rig.snapshot() is not None  # the user stream was never affected


async def test_duplicated_and_reordered_events_are_harmless(rig: Rig) -> None:
    faults = rig.server.streams.faults
    faults.duplicate, faults.reorder = 100, 100
    await rig.exchange.place_order(entry())
    await rig.exchange.place_order(stop("qtsA", "95000"))
    await rig.exchange.cancel_conditional_order(BTC, "qtsA")
    await rig.exchange.place_order(stop("qtsB", "94000"))
    await rig.exchange.place_order(entry("qteBTC2", "0.005"))
    await rig.mirrors_rest()
    assert faults.duplicate < 100
    assert faults.reorder < 100
    mirrored = rig.snapshot()
    assert mirrored is not None
    assert mirrored.orders["qtsA"].status is OrderStatus.CANCELED
    assert mirrored.positions[BTC].quantity == Decimal("0.015")
    assert rig.streams.health().gaps_detected == 0


async def test_the_listen_key_is_kept_alive_for_hours(rig: Rig) -> None:
    await advance(rig.server, 3 * 3600, step_s=60)
    assert rig.server.count("/fapi/v1/listenKey", "PUT") == 6  # every 30 minutes
    assert rig.server.count("/fapi/v1/listenKey", "POST") == 1
    assert rig.streams.health().usable
    assert not any("user" in h for h in rig.server.streams.handshakes[2:])


async def test_an_expired_listen_key_is_replaced_and_the_mirror_reseeded(rig: Rig) -> None:
    rig.server.streams.expire_listen_keys()
    await advance(rig.server, 0.1, 0.1)
    await rig.until_usable("reconnected with a new key")
    assert rig.server.count("/fapi/v1/listenKey", "POST") == 2
    users = [h for h in rig.server.streams.handshakes if h.startswith("user")]
    assert len(users) == 2
    await rig.exchange.place_order(entry())
    await rig.mirrors_rest()


async def test_binances_pings_are_answered_on_both_streams(rig: Rig) -> None:
    """Binance pings every 3 minutes and drops a connection with no pong in 10 minutes."""
    assert await rig.server.streams.ping(b"fstream-ping") == 2
    await settle(rig.server)  # the pings are read and the pongs come back
    assert sorted(rig.server.streams.pongs) == [(kind, b"fstream-ping")
                                                for kind in ("market", "user")]  # fmt: skip
    assert rig.streams.health().usable


async def test_a_missed_event_is_found_by_a_rest_snapshot_and_reseeded(rig: Rig) -> None:
    rig.server.streams.faults.drop = 100
    await rig.exchange.place_order(entry())
    await advance(rig.server, 1)
    mirrored = rig.snapshot()
    truth = await rig.rest_truth()
    assert mirrored is not None
    assert not same_account(mirrored, truth)  # the stream missed the entry
    rig.server.streams.faults.drop = 0
    rig.streams.reseed(truth)  # what the keeper's periodic REST check does
    assert same_account(rig.snapshot(), truth)
    assert rig.streams.health().gaps_detected == 1


async def test_events_after_a_rest_snapshot_survive_the_reseed(rig: Rig) -> None:
    truth = await rig.rest_truth()  # taken before the entry
    await rig.exchange.place_order(entry())
    await rig.settle(lambda: BTC in getattr(rig.snapshot(), "positions", {}), "the entry")
    rig.streams.reseed(truth)
    mirrored = rig.snapshot()
    assert mirrored is not None
    assert mirrored.positions[BTC].quantity == Decimal("0.010")


async def test_a_malformed_event_makes_the_mirror_reseed_itself(rig: Rig) -> None:
    now = rig.server.state.now_ms
    row = {"s": "BTCUSDT", "pa": "NaN", "ep": "1"}
    bad = {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {"m": "ORDER", "B": [], "P": [row]}}
    with capture_logs() as logs:
        rig.server.state.emit(bad)
        await advance(rig.server, 1)
        await rig.until_usable("reseeded")
    assert [e["event"] for e in logs if e["event"] == "user_data_event_malformed"]
    assert rig.streams.health().gaps_detected == 1
    assert rig.server.count("/fapi/v3/positionRisk") >= 2


async def test_while_rest_is_down_the_mirror_waits_for_its_snapshot(rig: Rig) -> None:
    now = rig.server.state.now_ms
    rig.server.outage(Outage("/fapi/v3/positionRisk", now, now + 30_000))
    await rig.server.streams.disconnect("user")
    await advance(rig.server, 20)
    assert rig.snapshot() is None  # connected again, but not seeded
    await rig.until_usable("seeded after the outage", max_s=40)
    assert rig.server.state.now_ms >= now + 30_000


async def test_stopping_closes_the_streams_and_the_listen_key(rig: Rig) -> None:
    rig.stopping.set()
    await asyncio.wait_for(rig.task, 10)
    assert rig.server.streams.connections == []
    assert rig.server.count("/fapi/v1/listenKey", "DELETE") == 1
    assert rig.streams.health().detail == "stopped"
    assert rig.snapshot() is None


async def test_random_stream_faults_leave_the_mirror_right(rig: Rig) -> None:
    rig.server.streams.random = RandomStreamFaults(
        seed=11, disconnect_per_s=0.05, duplicate=0.3, reorder=0.3
    )
    for index in range(6):
        await rig.exchange.place_order(entry(f"qte{index}", "0.002"))
        await rig.exchange.place_order(stop(f"qts{index}", "95000"))
        await advance(rig.server, 10)
    rig.server.streams.random = None
    await rig.until_usable("usable after the faults", max_s=70)
    kinds = [h.split()[0] for h in rig.server.streams.handshakes]
    assert kinds.count("user") >= 2  # the user stream was cut at least once
    await rig.mirrors_rest()


async def test_a_refused_api_key_stops_the_streams_with_operator_action() -> None:
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        await exchange.load_markets()
        server.inject(Fault(path="/fapi/v1/listenKey", status=401, code=-2015,
                            msg="Invalid API-key, IP, or permissions for action."))  # fmt: skip
        streams = streams_on(server, exchange)
        try:
            with pytest.raises(OperatorActionRequired, match="API key"):
                await asyncio.wait_for(streams.run(asyncio.Event()), 10)
        finally:
            await exchange.close()
        assert streams.health().usable is False


async def test_a_user_stream_that_answers_no_ping_is_declared_dead() -> None:
    """The user-data stream carries nothing while nothing happens: a half-open connection
    shows only as pings without pongs (ccxt's keep-alive, in real time: every
    stream_silence_s, dead after two)."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        await exchange.load_markets()
        try:
            async with running_streams(server, exchange, stream_silence_s=1.5) as streams:
                await advance_until(server, lambda: streams.health().usable, 10, "seeded")
                server.streams.silence("user", 3600)

                def users() -> int:
                    return sum(h.startswith("user") for h in server.streams.handshakes)

                with capture_logs() as logs:
                    for _ in range(100):  # up to 10 s of real time
                        if users() >= 2:
                            break
                        await asyncio.sleep(0.1)
                        clock.advance(0.1)
                assert users() >= 2
                # the market stream may also go silent on a busy machine (simulated time runs on
                # while the loop waits): the user-data stream's own line is the one under test
                down = [
                    e
                    for e in logs
                    if e["event"] == "exchange_stream_down" and e["stream"] == "user-data"
                ]
                assert "RequestTimeout" in down[0]["reason"]  # ccxt's keep-alive gave up
        finally:
            await exchange.close()


async def test_a_close_at_the_24_hour_mark_is_a_renewal_and_an_earlier_one_a_warning() -> None:
    """Binance ends every connection at its 24 hour mark (the stand-in too): each stream's
    close then is one info line, `exchange_stream_renewed`, and both come back; a close an
    hour later is `exchange_stream_down`, a warning (was: a warning for each, every day)."""
    clock = ManualClock(utc_from_ms(START_MS))
    async with LoopbackBinance(clock=clock) as server:
        exchange = connect(server)
        await exchange.load_markets()
        try:
            async with running_streams(server, exchange, stream_silence_s=1800) as streams:
                await advance_until(server, lambda: streams.health().usable, 10, "seeded")
                with capture_logs() as logs:
                    await advance(server, 24 * 3600 + 60, step_s=600)
                    await advance_until(server, lambda: streams.health().usable, 30, "again")
                renewed = [e for e in logs if e["event"] == "exchange_stream_renewed"]
                assert sorted(e["stream"] for e in renewed) == ["market", "user-data"]
                assert all(e["log_level"] == "info" for e in renewed)
                assert not [e for e in logs if e["log_level"] in ("warning", "error")]
                assert streams.health().reconnects == 2

                await advance(server, 3600, step_s=600)
                with capture_logs() as logs:
                    assert await server.streams.disconnect() == 2
                    await advance_until(server, lambda: streams.health().usable, 30, "back")
                down = [e for e in logs if e["event"] == "exchange_stream_down"]
                assert sorted(e["stream"] for e in down) == ["market", "user-data"]
                assert all(e["log_level"] == "warning" for e in down)
        finally:
            await exchange.close()


async def test_one_symbols_unreadable_mark_keeps_the_stream_and_the_others(rig: Rig) -> None:
    """A bad row for one symbol in the all-market mark-price stream costs that symbol its
    streamed mark (stale: REST reads it), not the stream: the others' marks keep arriving on
    the same connection, said once while it stays so (was: the row's error closed the stream,
    again at the first message after each reconnect)."""
    await rig.settle(lambda: rig.streams.mark_prices([BTC, ETH], rig.clock.now()) is not None, "up")
    rig.server.state.marks["ETHUSDT"] = Decimal("NaN")
    rig.server.state.marks["BTCUSDT"] = Decimal("101000.5")
    with capture_logs() as logs:
        for _ in range(5):
            await advance(rig.server, 1)
        await rig.settle(
            lambda: rig.streams.mark_prices([BTC], rig.clock.now()) == {BTC: Decimal("101000.5")},
            "BTC's new mark",
        )
        for _ in range(15):  # past the stream's silence bound: ETH's mark goes stale
            await advance(rig.server, 1)
        await rig.settle(
            lambda: rig.streams.mark_prices([BTC], rig.clock.now()) == {BTC: Decimal("101000.5")},
            "BTC's mark still streamed",
        )
    assert rig.streams.mark_prices([BTC, ETH], rig.clock.now()) == {  # ETH's is stale
        BTC: Decimal("101000.5")
    }
    assert rig.streams.health().reconnects == 0
    assert not [e for e in logs if e["event"] == "exchange_stream_down"]
    said = [e for e in logs if e["event"] == "mark_price_unreadable"]
    assert [e["symbols"] for e in said] == [[ETH]]
