"""Our protective stop meets its trigger: Binance moves it NEW → TRIGGERING ("met the
triggering condition and has been forwarded to the matching engine": Event: Algo Order
Update) → TRIGGERED → FINISHED. From TRIGGERING to its fill it is executing: the keeper places
no stop beside it, sends no exit beside it, says no error, and books the close once, SL_HIT at
the stop's fill, nothing of ours left on the exchange. Through the ccxt adapter on the
stand-in, its triggered stops held in TRIGGERING (`Engine.stall_triggers`) for two keeper
ticks, then run (`resume_stalled`): with the streams, and REST only whether or not GET
openAlgoOrders lists firing orders (`lists_firing`; where it does not, the keeper's lookup of
the stop by id says it is firing, or the book's record where that lookup fails). The mark
stays through the stop (the stop maths would close at market), or comes back above it (the
stop fired on a brief dip the keeper's mark never showed).

Was (an outside probe, 2026-12-06): the streams' mirror listed only resting (NEW) conditional
orders, so a firing stop dropped out of the snapshot: the keeper placed another (MISSING;
on Binance refused -2021 as immediately triggering, an error line, then a close at market),
and with the mark through the stop — on REST too — the stop maths sent a reduce-only market
close racing the stop's own order (on Binance the second refused, -2022, and a stray stop
placed for it, EXIT_REFUSED). And REST only, where GET openAlgoOrders left the firing stop out,
it counted as missing though its lookup said it was firing (until the same evening).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from loopback import LoopbackBinance
from loopback.faults import Outage
from standin_keeper import ALGO_ORDER, BTC_MARKET, TICK_S, EnteringKeeper, keeper_on_streams
from structlog.testing import capture_logs
from test_exchange_answers import BTC
from test_rest_only_orders_on_standin import keeper_rest_only

from quantum_trader.clock import ms_from_utc
from quantum_trader.domain import ExitReason
from quantum_trader.keeper.keeper import PositionKeeper
from quantum_trader.monitor.settings import MonitorSettings
from quantum_trader.storage.memory import InMemoryRepository

STOP = Decimal("97000")  # the sizer's long at 100,000: 0.003 BTC, its stop at 97,000
THROUGH = Decimal("96900.0")
BACK_ABOVE = Decimal("98500.0")
MARKS = pytest.mark.parametrize(
    "after", [THROUGH, BACK_ABOVE], ids=["mark-through-the-stop", "mark-back-above"]
)


def posted(server: LoopbackBinance, path: str, **wanted: str) -> list[dict[str, str]]:
    return [
        p
        for m, route, p in server.requests
        if (m, route) == ("POST", path) and all(p.get(k) == v for k, v in wanted.items())
    ]


def stops_sent(server: LoopbackBinance) -> int:
    return len(posted(server, "/fapi/v1/algoOrder", type="STOP_MARKET"))


def exits_sent(server: LoopbackBinance) -> list[dict[str, str]]:
    return posted(server, "/fapi/v1/order", reduceOnly="true")


def working(server: LoopbackBinance) -> list[tuple[str, str]]:
    """The stand-in's conditional orders not ended: (type, status)."""
    return sorted(
        (o["orderType"], o["algoStatus"])
        for o in server.state.algo_orders.values()
        if o["algoStatus"] in ("NEW", "TRIGGERING", "TRIGGERED")
    )


def fire_and_stall(server: LoopbackBinance, after: Decimal) -> None:
    """The mark goes through the stop (Binance triggers it, its market order held), then is
    left at `after`."""
    server.engine.stall_triggers = True
    server.state.marks[BTC_MARKET] = THROUGH
    server.sync()
    server.state.marks[BTC_MARKET] = after
    assert working(server) == [("STOP_MARKET", "TRIGGERING"), ("TAKE_PROFIT_MARKET", "NEW")]


async def waits_for_the_stop_then_books_it(
    server: LoopbackBinance,
    tick: Callable[[], Awaitable[None]],
    keeper: PositionKeeper,
    repository: InMemoryRepository,
    after: Decimal,
) -> None:
    assert stops_sent(server) == 1
    fire_and_stall(server, after)

    with capture_logs() as logs:
        await tick()
        await tick()

    assert stops_sent(server) == 1  # no stop beside the one executing
    assert exits_sent(server) == []  # no close racing it
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
    assert await repository.closed_trades() == []
    assert BTC in keeper.positions

    server.engine.resume_stalled()  # its market order executes at the mark
    with capture_logs() as logs:
        await tick()

    assert server.state.holding(BTC_MARKET).amount == 0
    [trade] = await repository.closed_trades()
    assert trade.exit_reason is ExitReason.SL_HIT
    assert (trade.quantity, trade.exit_price) == (Decimal("0.003"), after)
    assert BTC not in keeper.positions
    assert (stops_sent(server), exits_sent(server)) == (1, [])
    assert working(server) == []  # the take-profit released, no stray stop
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []


@MARKS
async def test_with_the_streams_a_stop_triggering_is_waited_for_then_booked(
    after: Decimal,
) -> None:
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        await waits_for_the_stop_then_books_it(
            rig.server, rig.tick, rig.keeper, rig.repository, after
        )


LISTED = pytest.mark.parametrize("listed", [True, False], ids=["listed-as-open", "not-listed"])


@MARKS
@LISTED
async def test_rest_only_a_stop_triggering_is_waited_for_then_booked(
    after: Decimal, listed: bool
) -> None:
    """Where GET openAlgoOrders leaves the firing stop out, the keeper's lookup of it by id
    (GET algoOrder) says it is firing: it covers the position as if listed (was: counted
    missing, another stop placed — on Binance refused -2021, an error line, then a close at
    market racing the stop's own order)."""
    async with keeper_rest_only([BTC]) as rig:
        rig.server.state.lists_firing = listed
        await waits_for_the_stop_then_books_it(
            rig.server, rig.tick, rig.keeper, rig.repository, after
        )


async def test_rest_only_a_stop_triggering_whose_lookup_fails_is_waited_for_too() -> None:
    """GET openAlgoOrders leaves the firing stop out and its lookup by id fails for two
    ticks: the book's own record of it (firing since the last lookup) covers the position
    meanwhile, as a listed firing stop does."""
    async with keeper_rest_only([BTC]) as rig:
        server = rig.server
        fire_and_stall(server, THROUGH)
        await rig.tick()  # looked up: firing
        now_ms = ms_from_utc(rig.now())
        two_ticks = now_ms + 2 * int(TICK_S * 1000) + 1
        server.outage(Outage(ALGO_ORDER, now_ms, two_ticks, method="GET"))
        with capture_logs() as logs:
            await rig.tick()
            await rig.tick()

        assert [e["event"] for e in logs if e["event"] == "order_lookup_failed"] != []
        assert (stops_sent(server), exits_sent(server)) == (1, [])
        assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []

        server.engine.resume_stalled()  # and the lookups answer again
        await rig.tick()
        [trade] = await rig.repository.closed_trades()
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, THROUGH)
        assert (stops_sent(server), exits_sent(server)) == (1, [])
        assert working(server) == []


async def test_the_mirror_lists_a_stop_triggering_as_firing_as_rest_does() -> None:
    """The mirror's open conditional orders hold the stop TRIGGERING, its trigger time that
    of Binance, as GET openAlgoOrders reads it where it lists firing orders."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        rig.server.state.lists_firing = True
        fire_and_stall(rig.server, THROUGH)
        await rig.tick()

        mirrored = rig.streams.snapshot(rig.now())
        assert mirrored is not None
        rest = await rig.exchange.fetch_open_conditional_orders()
        [firing] = [o for o in mirrored.open_conditional_orders if o.triggered_at is not None]
        [listed] = [o for o in rest if o.triggered_at is not None]
        assert firing.client_order_id == listed.client_order_id
        assert firing.triggered_at == listed.triggered_at
        assert {o.client_order_id for o in mirrored.open_conditional_orders} == {
            o.client_order_id for o in rest
        }


@LISTED
async def test_with_the_streams_a_stop_left_triggering_gets_another_once_stuck(
    listed: bool,
) -> None:
    """Binance leaves the stop TRIGGERING for good: through the streams as on REST
    (tests/keeper/test_keeper_stop_not_done.py), once it has been so
    `monitor.stop_stuck_after_s` a new stop goes beside it (STUCK, one error line), never a
    cancel of the stuck one; before then nothing, whether or not GET openAlgoOrders lists
    firing orders (the mirror's position and full checks against REST cross the wait: a
    firing order REST leaves out is no difference)."""
    stuck_after = MonitorSettings().stop_stuck_after_s
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        rig.server.state.lists_firing = listed
        [stop] = rig.sent("STOP_MARKET")
        fire_and_stall(rig.server, BACK_ABOVE)

        with capture_logs() as logs:
            waited = 0.0
            while waited + TICK_S < stuck_after:
                await rig.tick()
                waited += TICK_S
                assert len(rig.sent("STOP_MARKET")) == 1, f"a second stop after {waited} s"
            await rig.tick(2)

        assert [e["event"] for e in logs if e["event"] == "stream_mirror_differs"] == []
        stuck = [e["log_level"] for e in logs if e["event"] == "stop_stuck_triggering"]
        assert stuck == ["error"]
        [_, fresh] = rig.sent("STOP_MARKET")
        placed = (fresh["side"], fresh["triggerPrice"], fresh["quantity"])
        assert placed == ("SELL", str(STOP), "0.003")
        assert rig.keeper.positions[BTC].stop_order_id == fresh["clientAlgoId"]
        cancels = [p for m, path, p in rig.server.requests if m == "DELETE" and "algoOrder" in path]
        assert stop["clientAlgoId"] not in {p.get("clientAlgoId") for p in cancels}
        assert exits_sent(rig.server) == []


def full_reads(server: LoopbackBinance) -> int:
    """The reads of every symbol's open algo orders (the keeper's full check)."""
    return sum(
        1
        for m, path, p in server.requests
        if (m, path) == ("GET", "/fapi/v1/openAlgoOrders") and "symbol" not in p
    )


async def test_with_the_streams_the_full_check_crossing_a_stop_triggering_waits_too() -> None:
    """The tick of the full check is planned from REST, whose open orders may leave the firing
    stop out (the stand-in's default): the mirror's firing stop is kept in them, so that tick
    too places no stop beside it and sends no exit."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        before = full_reads(rig.server)
        while full_reads(rig.server) == before:
            await rig.tick()
        await rig.tick(8)  # 40 s on: the next full check 20 s away
        before = full_reads(rig.server)
        fire_and_stall(rig.server, THROUGH)

        with capture_logs() as logs:
            await rig.tick(5)  # 25 s: still short of `stop_stuck_after_s`

        assert full_reads(rig.server) > before
        assert (stops_sent(rig.server), exits_sent(rig.server)) == (1, [])
        assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
        assert [e for e in logs if e["event"] == "stream_mirror_differs"] == []

        rig.server.engine.resume_stalled()
        await rig.tick()
        [trade] = await rig.repository.closed_trades()
        assert (trade.exit_reason, trade.exit_price) == (ExitReason.SL_HIT, THROUGH)
        assert working(rig.server) == []


async def test_with_the_streams_a_stop_whose_end_event_is_lost_is_booked_as_the_stop() -> None:
    """The campaign's seed 34309: our stop fired and filled, the user-data stream delivered
    its fill and the position's change but lost the ALGO_UPDATE that ended it (FINISHED): the
    mirror kept it firing, so it was never looked up, and once it counted as stuck (30 s) the
    position's close was booked MANUAL, the stop "filled with no position of ours left" a tick
    later. A stop listed firing is now looked up each tick; the lookup's FINISHED ends it."""
    async with keeper_on_streams(EnteringKeeper) as rig:
        await rig.enter()
        await rig.tick()
        server = rig.server
        fire_and_stall(server, THROUGH)
        await rig.tick(2)
        hub, sinks = server.streams, server.state.sinks
        at = sinks.index(hub.on_user_event)

        def losing_the_end(event: dict[str, Any]) -> None:
            if event["e"] != "ALGO_UPDATE" or event["o"]["X"] != "FINISHED":
                hub.on_user_event(event)

        sinks[at] = losing_the_end
        server.engine.resume_stalled()
        with capture_logs() as logs:
            await rig.tick(8)  # past monitor.stop_stuck_after_s

        [trade] = await rig.repository.closed_trades()
        assert trade.exit_reason is ExitReason.SL_HIT
        assert BTC not in rig.keeper.positions
        assert stops_sent(server) == 1
        assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
